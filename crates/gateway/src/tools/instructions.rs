//! The guidance an agent needs: the server `instructions` sent at initialize (and in
//! `server/discover`), and the three `get_*_instructions` tools with the full texts.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::schema::{open_object, string};
use super::{Behaviour, Tool, ToolContext, ToolResult, success};
use crate::errors::Code;

/// What an agent does about each error code, as a Markdown list.
pub fn error_code_guide() -> String {
    Code::ALL
        .iter()
        .map(|c| format!("- `{}` ({}): {}.", c.as_str(), c.status(), c.advice()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The server instructions, sent at initialize and in `server/discover`.
pub fn server_instructions() -> String {
    format!(
        "Layer (layer.ai) makes images, video, 3D models and audio. Generations are billed in Creative Units (CU) of a workspace.\n\
\n\
Lifecycle, always in this order:\n\
1. Discover: list_workspaces (pick a workspace_id), then get_model_recommendations or list_models for a model, or list_workflows for a multi-step workflow.\n\
2. Estimate: estimate_forge_price or estimate_workflow_price with the exact arguments you will execute. If the price is more than about 20 Creative Units, tell the user the price and the balance and ask before spending.\n\
3. Execute: execute_forge (returns inference_id) or execute_workflow (returns run_id). Runs are asynchronous. Pass an idempotency_key you can reuse if you must retry.\n\
4. Poll: get_forge_run / get_workflow_run until the status is terminal, waiting poll_interval_seconds between calls (about 10 s). Do not poll faster.\n\
5. Display: show the outputs (resource links with URL and type) and the Creative Units charged.\n\
\n\
Files: upload_file(url) imports a public PNG, JPEG, WebP or MP4 and returns a file_id to use as guidance; request_file_upload_url gives a signed URL for the user to upload to.\n\
At most 5 runs may be in progress per user per workspace; cancel_workflow_run stops a workflow run and releases its reserved Creative Units.\n\
\n\
Errors come back as tool results with isError true and structured content {{code, status, message, request_id}}:\n{}\n\
\n\
Call get_instructions, get_forge_instructions or get_workflow_instructions for the full guide.",
        error_code_guide()
    )
}

fn platform_guide() -> String {
    format!(
        "# Using Layer through this MCP server\n\
\n\
## The platform\n\
Layer generates images, video, 3D models and audio with many models (its own and providers'), and runs workflows: multi-step pipelines with typed inputs and outputs (for example a product shot from a product photo and a scene prompt). Everything happens inside a workspace: a team's models, workflows, files and Creative Unit balance. The user may belong to several workspaces; list_workspaces shows them with their balances.\n\
\n\
## Creative Units (CU)\n\
- Every generation has a price in Creative Units that depends on the model and the parameters: batch size (number of outputs), resolution, video or audio duration, 3D options. Estimate first: estimate_forge_price / estimate_workflow_price return the price, the available balance and whether it suffices.\n\
- Executing reserves the estimated price from the available balance; when the run completes, the actual price (equal to or a little below the estimate) is charged and the reservation released. Failed, refused and cancelled runs cost nothing.\n\
- available_creative_units = balance minus what running generations have reserved; it can be negative.\n\
- Ask the user before spending more than about 20 Creative Units on one run, and whenever the balance would run low. Prefer batch_size 1 while exploring.\n\
\n\
## Lifecycle\n\
discover (list_workspaces, get_model_recommendations, list_models, get_model, list_workflows) -> estimate -> execute -> poll (honour poll_interval_seconds) -> display.\n\
- Reuse ids exactly as returned: workspace_id, model_id, workflow_id, inference_id, run_id and file_id are UUIDs.\n\
- Runs are asynchronous: execute returns at once with an id; poll the matching get_*_run tool every poll_interval_seconds until the status is terminal.\n\
- Completed runs list their outputs (URL, content type, size, dimensions); the get_*_run result also carries resource links you can show.\n\
- At most 5 runs may be in progress per user per workspace, and at most 5 calls at once (more wait their turn). A 6th execute is refused with RATE_LIMITED listing the runs in progress (active_runs, each with the tool that polls it): poll them until they finish, cancel one, or retry after retry_after_seconds. Finished runs free their places even if you never polled them.\n\
- If an execute fails with UPSTREAM_UNAVAILABLE, retry with the same idempotency_key: Layer then returns the run it already started instead of starting a second one.\n\
\n\
## Files\n\
- upload_file(workspace_id, url): the server downloads a public http(s) URL (PNG, JPEG, WebP or MP4, at most 64 MB), checks its type from its bytes, uploads it to the workspace and returns a file_id. Private, local and cloud-metadata addresses are refused.\n\
- request_file_upload_url: for a file the user has locally; returns a signed URL valid 15 minutes and the exact upload steps.\n\
- Use a file_id in execute_forge's guidance_files (e.g. type reference_image or init_image) or as a workflow file input.\n\
\n\
## Errors\n\
A failed call returns isError true with structured content {{code, status, message, request_id}} (and retry_after_seconds when waiting helps). Quote request_id when reporting a problem.\n\
{}\n",
        error_code_guide()
    )
}

const WORKFLOW_GUIDE: &str = "# Workflows\n\
\n\
A workflow is a published multi-step pipeline in a workspace, with typed inputs and outputs.\n\
\n\
1. list_workflows(workspace_id, search?): each workflow lists its inputs (name, type, required, description, value_schema, default) and outputs. Build `inputs` as an object keyed by input name; values must match each input's type and value_schema. File inputs take a file_id from upload_file.\n\
2. estimate_workflow_price(workspace_id, workflow_id, inputs): returns estimated_price_creative_units, the available balance, has_sufficient_creative_units, and output_counts (how many of each output the run makes). Ask the user before spending more than about 20 Creative Units.\n\
3. execute_workflow(workspace_id, workflow_id, inputs, session_name?, idempotency_key?): starts the run and returns run_id, status (pending), estimated_price_creative_units and poll_interval_seconds. The estimate is reserved from the balance.\n\
4. get_workflow_run(workspace_id, workflow_id, run_id): poll every poll_interval_seconds. Statuses: pending and running (keep polling), success, failure, cancelled (terminal). steps shows each step's status. On success, outputs list the files (url, content_type, object_type) and actual_price_creative_units is charged; the result includes resource links and a summary with the balance left.\n\
5. cancel_workflow_run(workspace_id, workflow_id, run_id): stops a pending or running run and releases its reserved Creative Units; a finished run answers RUN_NOT_CANCELLABLE.\n\
\n\
Failures: a failed run has error and error_code (e.g. BlueprintInsufficientBalanceError, BlueprintInvalidRuntimeValueError: fix the input named in error) and may list refusals (content refused by a guardrail or the provider: rephrase the prompt). Failed runs cost nothing.\n";

const FORGE_GUIDE: &str = "# Forge: running a model directly\n\
\n\
1. Pick a model: get_model_recommendations(workspace_id) gives curated picks per modality and use case; list_models(workspace_id, modality?, capabilities?, search?) lists all. get_model(workspace_id, model_id) shows its capabilities (guidance_file_types, inpainting, durations, text_prompt_required, max_prompt_chars…) and prompt_format: follow it when writing the prompt.\n\
2. estimate_forge_price(workspace_id, model_id, prompt, …): the same arguments you will execute. Returns estimated_price_creative_units, workspace_balance_creative_units, estimated_remaining_balance_creative_units and has_sufficient_creative_units. Ask the user before spending more than about 20 Creative Units.\n\
3. execute_forge(…same arguments…, seed?, session_name?, idempotency_key?): returns inference_id, status in_progress, poll_interval_seconds and the estimate (reserved from the balance).\n\
4. get_forge_run(workspace_id, inference_id): poll every poll_interval_seconds. Statuses: in_progress (keep polling), complete, failed, cancelled, deleted (terminal). When complete, outputs list each file (url, content_type, width, height, duration_seconds, file_size_bytes) and actual_price_creative_units; the result includes a resource link per output and a summary with the balance left. A failed run has error and error_code (CONTENT_POLICY_VIOLATION, INPUT_GUARDRAIL_VIOLATION, PROMPT_INTELLECTUAL_PROPERTY, NO_MEDIA_GENERATED: rephrase the prompt; INSUFFICIENT_BALANCE: ask the user) and costs nothing.\n\
\n\
## Parameters\n\
- model_id (required), prompt (at most 100000 characters; required by models whose capabilities say text_prompt_required).\n\
- batch_size: number of outputs, 1-16, default 4. The price scales with it: use 1 while exploring.\n\
- width, height: pixels; the model's default when omitted. Larger costs more.\n\
- seed: for reproducible results; -1 or omitted for random.\n\
- guidance_files: up to 20 uploaded files, each {file_id, type, weight 0-1}. type is the slot the file fills and must be one the model lists in capabilities.guidance_file_types, e.g. init_image (image-to-image), reference_image (style or subject reference), pose, depth, canny, first_frame / last_frame (video), init_mesh (3D), init_audio.\n\
- mask: for inpainting models: {file_id} of a mask image, or {for_transparency: true} to repaint the init image's transparent area; edge_radius blurs the edge.\n\
- session_name: groups runs in the Layer app.\n\
- options: modality options, each honoured only by models whose capabilities report it: weight (0-2, style strength), quality (low|medium|high), num_inference_steps, guidance_scale, duration_seconds (video clip or audio length; within the model's range), fps, generate_audio, keep_audio, video_effects, instrumental, loop, lyrics, output_format, prompt_strength (audio), pose_mode (A_POSE|T_POSE), include_textures, detailed_geometry, remesh_geometry, texture_resolution (RES_2K|RES_4K|RES_8K), remove_lighting, mesh_density, preserve_uvs, quad_mesh, pbr_materials, low_poly, generate_parts, face_limit, segment_* (mesh splitting), stability, similarity_boost, style_exaggeration, speed, use_speaker_boost (speech), upscale_ratio, creativity, resemblance (upscaling), vectorize, remove_background, reframe, refill, subtitle_* (captions).\n\
\n\
## Pricing\n\
The price depends on the model and on batch size, resolution, duration and 3D options; always estimate with the exact arguments. Cancelled and failed runs cost nothing.\n";

fn guide_schema() -> Value {
    open_object(
        vec![
            ("topic", string("What this guide covers.")),
            ("instructions", string("The guide, in Markdown.")),
        ],
        &["topic", "instructions"],
    )
}

fn guide(topic: &str, text: String) -> ToolResult {
    Ok(success(
        json!({"topic": topic, "instructions": text}),
        vec![],
    ))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetInstructions {}

impl Tool for GetInstructions {
    const NAME: &'static str = "get_instructions";
    const TITLE: &'static str = "How to use Layer";
    const DESCRIPTION: &'static str = "Read this first. Returns the full guide to Layer through this server: the platform, Creative Unit pricing and when to ask the user before spending, the discover -> estimate -> execute -> poll -> display lifecycle, files, and every error code with what to do about it. No arguments, no cost.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        guide_schema()
    }

    async fn call(self, _ctx: &ToolContext) -> ToolResult {
        guide("platform", platform_guide())
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetWorkflowInstructions {}

impl Tool for GetWorkflowInstructions {
    const NAME: &'static str = "get_workflow_instructions";
    const TITLE: &'static str = "How to run Layer workflows";
    const DESCRIPTION: &'static str = "Returns the guide to workflows: finding one and building its inputs, estimating, executing, polling a run through its statuses, cancelling, and reading failures and refusals. No arguments, no cost.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        guide_schema()
    }

    async fn call(self, _ctx: &ToolContext) -> ToolResult {
        guide("workflows", WORKFLOW_GUIDE.to_owned())
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetForgeInstructions {}

impl Tool for GetForgeInstructions {
    const NAME: &'static str = "get_forge_instructions";
    const TITLE: &'static str = "How to run Layer models (forge)";
    const DESCRIPTION: &'static str = "Returns the guide to running a model directly (forge): choosing a model, every execute_forge parameter (batch size, size, seed, guidance files, masks, modality options), pricing, polling and reading outputs. No arguments, no cost.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        guide_schema()
    }

    async fn call(self, _ctx: &ToolContext) -> ToolResult {
        guide("forge", FORGE_GUIDE.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_teach_the_lifecycle_the_budget_rule_and_every_code() {
        let text = server_instructions();
        for needle in [
            "estimate",
            "execute",
            "poll_interval_seconds",
            "20 Creative Units",
            "isError",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
        for code in Code::ALL {
            assert!(text.contains(code.as_str()), "missing {code}");
            assert!(platform_guide().contains(code.as_str()));
        }
        assert!(FORGE_GUIDE.contains("guidance_files") && FORGE_GUIDE.contains("batch_size"));
        assert!(WORKFLOW_GUIDE.contains("cancel_workflow_run"));
    }
}
