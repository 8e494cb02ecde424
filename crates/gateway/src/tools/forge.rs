//! `estimate_forge_price`, `execute_forge`, `get_forge_run`.

use layer_api::{
    AudioOutputFormat, FileId, GuidanceFile, GuidanceFileType, InferenceId, InferenceOptions,
    InferenceRequest, InferenceRun, Mask, MeshDensity, ModelId, PoseMode, Quality, SegmentBy,
    SegmentLevel, SegmentTarget, SubtitleAlignment, TextureResolution, VideoEffectType,
    WorkspaceId,
};
use rmcp::model::ContentBlock;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{self, idempotency_key, non_blank, one_of};
use super::runs::{OutputFile, resource_links, success_summary};
use super::schema::{array, boolean, integer, nullable, number, open_object, string, uuid};
use super::{Behaviour, Tool, ToolContext, ToolResult, success, to_json};
use crate::caps::refusal::FORGE;
use crate::errors::Subject;
use crate::upstream::{CallKind, Outcome};
use limiter::RunRef;

// The modality options: names and types follow models.py's `ExecuteInferenceRequest`. Only
// the schema is used: the values are read into `InferenceOptions`, which a test keeps in step
// with this list. (Plain comments: a doc comment would become the schema's description.)
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ForgeOptions {
    /// Style/LoRA strength: 1 as trained, lower weakens, higher over-applies.
    #[schemars(range(min = 0.0, max = 2.0))]
    weight: Option<f64>,
    /// Diffusion steps.
    #[schemars(range(min = 1))]
    num_inference_steps: Option<i64>,
    /// Classifier-free guidance scale.
    guidance_scale: Option<f64>,
    /// Audio models: how closely the audio follows the prompt (0-1).
    #[schemars(range(min = 0.0, max = 1.0))]
    prompt_strength: Option<f64>,
    /// Quality level.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<Quality>")]
    quality: Option<Quality>,
    /// Output sharpness.
    sharpness: Option<f64>,
    /// Video or audio clip length in seconds, within the model's supported range.
    #[schemars(range(min = 0.0))]
    duration_seconds: Option<f64>,
    /// Generate audio with the video.
    generate_audio: Option<bool>,
    /// Keep the input video's audio.
    keep_audio: Option<bool>,
    /// Music without vocals (models reporting instrumental).
    instrumental: Option<bool>,
    /// Make the clip loop seamlessly (models reporting loop).
    #[schemars(rename = "loop")]
    loop_: Option<bool>,
    /// Audio container.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<AudioOutputFormat>")]
    output_format: Option<AudioOutputFormat>,
    /// Words to sing (models reporting lyrics).
    lyrics: Option<String>,
    /// Music as ordered sections {positive_styles, negative_styles, sections:[{name, duration_seconds, positive_styles, negative_styles, lines}]} (models reporting composition_plan).
    #[serde(default)]
    #[schemars(schema_with = "args::any_object")]
    composition_plan: Option<Value>,
    /// Frames per second of the video (e.g. 25 or 50).
    #[schemars(range(min = 1))]
    fps: Option<i64>,
    /// Video effects to apply.
    video_effects: Option<Vec<VideoEffectArg>>,
    /// Caption style, one of the model's subtitle_presets.
    subtitle_preset: Option<String>,
    /// Caption colour as hex, e.g. #FFFFFF.
    subtitle_color: Option<String>,
    /// Colour of emphasised words, as hex.
    subtitle_secondary_color: Option<String>,
    /// Where captions sit.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<SubtitleAlignment>")]
    subtitle_alignment: Option<SubtitleAlignment>,
    /// Deprecated: use pose_mode.
    use_ta_pose: Option<bool>,
    /// Rest pose of a character mesh.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<PoseMode>")]
    pose_mode: Option<PoseMode>,
    /// Include textures in 3D output.
    include_textures: Option<bool>,
    /// Denser geometry (costs extra).
    detailed_geometry: Option<bool>,
    /// false keeps the provider's raw geometry.
    remesh_geometry: Option<bool>,
    /// Base colour texture size (RES_8K costs extra).
    #[serde(default)]
    #[schemars(schema_with = "one_of::<TextureResolution>")]
    texture_resolution: Option<TextureResolution>,
    /// Strip baked lighting from textures.
    remove_lighting: Option<bool>,
    /// Adaptive face count.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<MeshDensity>")]
    mesh_density: Option<MeshDensity>,
    /// Keep the mesh's UV layout when retexturing.
    preserve_uvs: Option<bool>,
    /// Split a mesh along: AUTO or PARTS.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<SegmentBy>")]
    segment_by: Option<SegmentBy>,
    /// Parts to split along when segment_by is PARTS.
    #[schemars(length(max = 10), extend("items" = {"type": "string", "description": "A part name."}))]
    segment_part_names: Option<Vec<String>>,
    /// What a mesh split treats the mesh as.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<SegmentTarget>")]
    segment_target: Option<SegmentTarget>,
    /// How many parts a CHARACTER split makes.
    #[schemars(range(min = 1))]
    segment_parts: Option<i64>,
    /// How finely a GENERAL split cuts.
    #[serde(default)]
    #[schemars(schema_with = "one_of::<SegmentLevel>")]
    segment_level: Option<SegmentLevel>,
    /// How aggressively a mesh split cuts.
    #[schemars(range(min = 0))]
    segment_strength: Option<i64>,
    /// Quad mesh.
    quad_mesh: Option<bool>,
    /// PBR materials.
    pbr_materials: Option<bool>,
    /// Low-poly mesh.
    low_poly: Option<bool>,
    /// Separate parts.
    generate_parts: Option<bool>,
    /// Face/polygon limit of the mesh.
    #[schemars(range(min = 1))]
    face_limit: Option<i64>,
    /// Speech stability (0-1).
    #[schemars(range(min = 0.0, max = 1.0))]
    stability: Option<f64>,
    /// Boost speaker clarity.
    use_speaker_boost: Option<bool>,
    /// Voice similarity boost (0-1).
    #[schemars(range(min = 0.0, max = 1.0))]
    similarity_boost: Option<f64>,
    /// Style exaggeration (0-1).
    #[schemars(range(min = 0.0, max = 1.0))]
    style_exaggeration: Option<f64>,
    /// Speech speed multiplier.
    #[schemars(range(min = 0.0))]
    speed: Option<f64>,
    /// Upscale factor, e.g. 2 or 4.
    #[schemars(range(min = 0.0))]
    upscale_ratio: Option<f64>,
    /// Creative variation when upscaling.
    creativity: Option<f64>,
    /// Resemblance to the original when upscaling.
    resemblance: Option<f64>,
    /// Vectorize the output image.
    vectorize: Option<bool>,
    /// Remove the background from the output.
    remove_background: Option<bool>,
    /// Reframe/extend the image.
    reframe: Option<bool>,
    /// Outpaint transparent areas.
    refill: Option<bool>,
}

// One video effect (schema only, like `ForgeOptions`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct VideoEffectArg {
    /// The effect.
    #[schemars(rename = "type", schema_with = "one_of::<VideoEffectType>")]
    kind: VideoEffectType,
    /// Effect strength.
    weight: Option<f64>,
}

// One guidance file (schema only: the values are read into `GuidanceFile`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct GuidanceFileArg {
    /// An uploaded file, from upload_file or request_file_upload_url.
    #[schemars(schema_with = "args::uuid")]
    file_id: FileId,
    /// The slot the file fills; must be one of the model's capabilities.guidance_file_types.
    #[schemars(rename = "type", schema_with = "one_of::<GuidanceFileType>")]
    kind: GuidanceFileType,
    /// Influence 0-1 (default 0.5 for init_image, 1 otherwise).
    #[schemars(range(min = 0.0, max = 1.0))]
    weight: Option<f64>,
}

// A mask (schema only: the values are read into `Mask`).
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct MaskArg {
    /// A mask image uploaded with source_type mask.
    #[serde(default)]
    #[schemars(schema_with = "args::uuid")]
    file_id: Option<FileId>,
    /// Repaint the init image's transparent area.
    for_transparency: Option<bool>,
    /// Repaint the non-transparent area.
    for_nontransparency: Option<bool>,
    /// Blur radius of the mask edge, pixels.
    #[schemars(range(min = 0), extend("default" = 0))]
    edge_radius: Option<i64>,
}

// The arguments estimating and executing a model run share.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgeCall {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// The model, from list_models or get_model_recommendations.
    #[schemars(schema_with = "args::uuid")]
    model_id: ModelId,
    /// What to make. Follow the model's prompt_format (get_model).
    #[serde(default)]
    #[schemars(length(max = 100_000))]
    prompt: Option<String>,
    /// Output width in pixels; the model's default when omitted.
    #[serde(default)]
    #[schemars(range(min = 1, max = 16_384))]
    width: Option<u32>,
    /// Output height in pixels; the model's default when omitted.
    #[serde(default)]
    #[schemars(range(min = 1, max = 16_384))]
    height: Option<u32>,
    /// Number of outputs; the price scales with it. Use 1 while exploring.
    #[serde(default)]
    #[schemars(range(min = 1, max = 16), extend("default" = 4))]
    batch_size: Option<u32>,
    /// Reference files that guide the generation.
    #[serde(default)]
    #[schemars(with = "Vec<GuidanceFileArg>", length(max = 20))]
    guidance_files: Option<Vec<GuidanceFile>>,
    #[serde(default)]
    #[schemars(with = "MaskArg")]
    mask: Option<Mask>,
    #[serde(default)]
    #[schemars(with = "ForgeOptions")]
    options: Option<InferenceOptions>,
}

impl ForgeCall {
    /// The upstream request (`seed` and `session_name` for an execute).
    fn request(self, seed: Option<i64>, session_name: Option<String>) -> InferenceRequest {
        InferenceRequest {
            model_id: self.model_id,
            prompt: self.prompt,
            width: self.width,
            height: self.height,
            batch_size: self.batch_size,
            seed,
            guidance_files: self.guidance_files.unwrap_or_default(),
            mask: self.mask,
            session_name,
            options: self.options.unwrap_or_default(),
            extra: Map::new(),
        }
    }
}

fn estimate_schema() -> Value {
    open_object(
        vec![
            (
                "estimated_price_creative_units",
                number("The run's estimated price.", None, None),
            ),
            (
                "workspace_balance_creative_units",
                number(
                    "Available balance now (balance minus reservations).",
                    None,
                    None,
                ),
            ),
            (
                "estimated_remaining_balance_creative_units",
                number(
                    "Available balance after the run; may be negative.",
                    None,
                    None,
                ),
            ),
            (
                "has_sufficient_creative_units",
                boolean("Whether the balance covers the estimate."),
            ),
        ],
        &[
            "estimated_price_creative_units",
            "workspace_balance_creative_units",
            "estimated_remaining_balance_creative_units",
            "has_sufficient_creative_units",
        ],
    )
}

fn asset_schema() -> Value {
    open_object(
        vec![
            ("file_id", uuid("The output file.")),
            ("url", string("Where to download it.")),
            ("content_type", string("MIME type.")),
            ("preview_url", nullable(string("A smaller preview."))),
            ("width", nullable(integer("Pixels.", 0, None, None))),
            ("height", nullable(integer("Pixels.", 0, None, None))),
            (
                "duration_seconds",
                nullable(number("Video/audio length.", None, None)),
            ),
            ("file_size_bytes", nullable(integer("Size.", 0, None, None))),
        ],
        &["url", "content_type"],
    )
}

fn run_schema() -> Value {
    open_object(
        vec![
            ("workspace_id", uuid("The workspace.")),
            ("inference_id", uuid("The run.")),
            (
                "status",
                string("in_progress; or terminal: complete, failed, cancelled, deleted."),
            ),
            (
                "poll_interval_seconds",
                nullable(integer(
                    "While in progress: wait this long before polling again.",
                    0,
                    None,
                    None,
                )),
            ),
            (
                "completed_at",
                nullable(json!({"type": "string", "format": "date-time"})),
            ),
            (
                "outputs",
                nullable(array(
                    "The files made (when complete).",
                    asset_schema(),
                    None,
                )),
            ),
            (
                "actual_price_creative_units",
                nullable(number("Creative Units charged.", None, None)),
            ),
            ("error", nullable(string("Why it failed."))),
            (
                "error_code",
                nullable(string(
                    "e.g. CONTENT_POLICY_VIOLATION, INSUFFICIENT_BALANCE.",
                )),
            ),
            (
                "summary",
                string("One-paragraph account of the run for the user."),
            ),
        ],
        &["workspace_id", "inference_id", "status", "summary"],
    )
}

#[derive(Deserialize, JsonSchema)]
pub struct EstimateForgePrice(ForgeCall);

impl Tool for EstimateForgePrice {
    const NAME: &'static str = "estimate_forge_price";
    const TITLE: &'static str = "Estimate a model run";
    const DESCRIPTION: &'static str = "Prices a model run (forge) without running it: returns estimated_price_creative_units, the available balance, the balance after the run and has_sufficient_creative_units. Pass exactly the arguments you will give execute_forge (price depends on model, batch_size, size, duration and 3D options). If the price is above about 20 Creative Units, ask the user before executing. Costs nothing. See get_forge_instructions for every parameter.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        estimate_schema()
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.0.workspace_id;
        let request = self.0.request(None, None);
        let estimate = ctx
            .read(
                Some(workspace),
                CallKind::Read,
                Subject::Model,
                |layer| async move { layer.estimate_inference(workspace, &request).await },
            )
            .await?;
        Ok(success(to_json(&estimate)?, vec![]))
    }
}

#[derive(Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ExecuteForge {
    #[serde(flatten)]
    call: ForgeCall,
    /// Seed for reproducible output; -1 or omitted for random.
    #[serde(default)]
    #[schemars(range(min = -1), extend("default" = -1))]
    seed: Option<i64>,
    /// Group the run under a session of this name in the Layer app.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 255))]
    session_name: Option<String>,
    /// Any unique string (e.g. a UUID). Retrying with the same key and arguments returns the run already started instead of starting another.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 255))]
    idempotency_key: Option<String>,
}

impl Tool for ExecuteForge {
    const NAME: &'static str = "execute_forge";
    const TITLE: &'static str = "Run a model";
    const DESCRIPTION: &'static str = "Starts a model run (forge) and returns at once with inference_id, status in_progress, poll_interval_seconds and the estimated price, which is reserved from the workspace balance. Estimate first with the same arguments and ask the user before spending more than about 20 Creative Units. Then poll get_forge_run every poll_interval_seconds until the status is terminal. At most 5 runs may be in progress per user per workspace. Pass idempotency_key to retry safely.";
    const BEHAVIOUR: Behaviour = Behaviour::CREATES;

    fn output() -> Value {
        open_object(
            vec![
                ("workspace_id", uuid("The workspace.")),
                ("inference_id", uuid("Poll it with get_forge_run.")),
                ("status", string("in_progress.")),
                (
                    "poll_interval_seconds",
                    integer("Wait this long before polling.", 0, None, None),
                ),
                (
                    "estimated_price_creative_units",
                    nullable(number(
                        "Reserved now; the final charge is equal or lower.",
                        None,
                        None,
                    )),
                ),
                (
                    "created_at",
                    json!({"type": "string", "format": "date-time"}),
                ),
                (
                    "session_id",
                    nullable(uuid("The Layer session it belongs to.")),
                ),
                (
                    "normalized_parameters",
                    nullable(
                        json!({"type": "object", "description": "The parameters as Layer will apply them."}),
                    ),
                ),
                ("next_step", string("What to do next.")),
            ],
            &[
                "workspace_id",
                "inference_id",
                "status",
                "poll_interval_seconds",
            ],
        )
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.call.workspace_id;
        let key = idempotency_key(self.idempotency_key)?;
        let request = self.call.request(self.seed, self.session_name);
        let started = ctx
            .run(
                workspace,
                key,
                Subject::Model,
                |layer| async move { layer.execute_inference(workspace, &request).await },
                |started| RunRef::new(FORGE, started.inference_id.to_string()),
            )
            .await?;
        let mut structured = to_json(&started)?;
        structured["workspace_id"] = json!(workspace.to_string());
        structured["next_step"] = json!(format!(
            "Call get_forge_run with workspace_id {workspace} and inference_id {} in {} seconds, and again every poll_interval_seconds until the status is complete, failed or cancelled.",
            started.inference_id, started.poll_interval_seconds
        ));
        Ok(success(structured, vec![]))
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetForgeRun {
    /// The workspace the run was started in.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// From execute_forge.
    #[schemars(schema_with = "args::uuid")]
    inference_id: InferenceId,
}

impl Tool for GetForgeRun {
    const NAME: &'static str = "get_forge_run";
    const TITLE: &'static str = "Check a model run";
    const DESCRIPTION: &'static str = "Returns a model run's status. While in_progress, wait poll_interval_seconds and call again. When complete: the outputs (url, content_type, size, dimensions), actual_price_creative_units, a resource link per output and a summary with the balance left: show them to the user. failed: error and error_code say why (nothing is charged).";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        run_schema()
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let (workspace, inference) = (self.workspace_id, self.inference_id);
        let (run, balance) = ctx
            .read_settling(
                Some(workspace),
                CallKind::PollRun,
                Subject::Run,
                |layer| async move {
                    let run = layer.get_inference(workspace, inference).await?;
                    // The balance left, for the summary; a failure here does not fail the poll.
                    let balance = if run.status.is_success() {
                        layer
                            .get_workspace(workspace)
                            .await
                            .ok()
                            .map(|w| (w.name, w.available_creative_units))
                    } else {
                        None
                    };
                    Ok((run, balance))
                },
                |result| match result {
                    Ok((run, _)) => Outcome::RunSeen {
                        run: inference.to_string(),
                        terminal: run.status.is_terminal(),
                    },
                    Err(e) => run_failure(e, inference),
                },
            )
            .await?;
        let (summary, blocks) = describe_run(&run, balance);
        let mut structured = to_json(&run)?;
        structured["workspace_id"] = json!(workspace.to_string());
        structured["summary"] = json!(summary);
        Ok(success(structured, blocks))
    }
}

/// A poll that failed: a run Layer does not know cannot hold a place.
fn run_failure(error: &layer_api::Error, run: InferenceId) -> Outcome {
    if error.status().is_some_and(|s| s.as_u16() == 404) {
        Outcome::RunEnded(run.to_string())
    } else {
        Outcome::Failed
    }
}

fn describe_run(run: &InferenceRun, balance: Option<(String, f64)>) -> (String, Vec<ContentBlock>) {
    let label = format!("Forge run {}", run.inference_id);
    let id = run.inference_id.to_string();
    if run.status.is_success() {
        let files: Vec<OutputFile<'_>> = run
            .outputs
            .iter()
            .flatten()
            .map(|o| OutputFile {
                url: &o.url,
                content_type: &o.content_type,
                file_size_bytes: o.file_size_bytes,
                width: o.width,
                height: o.height,
                duration_seconds: o.duration_seconds,
            })
            .collect();
        let summary = success_summary(&label, &files, run.actual_price_creative_units, balance);
        let mut blocks = vec![ContentBlock::text(summary.clone())];
        blocks.extend(resource_links(&id, &files));
        return (summary, blocks);
    }
    let summary = if run.status.is_terminal() {
        let why = match (&run.error_code, &run.error) {
            (Some(code), Some(error)) => format!(" ({code}): {error}"),
            (Some(code), None) => format!(" ({code})"),
            (None, Some(error)) => format!(": {error}"),
            (None, None) => String::new(),
        };
        format!(
            "{label} ended with status {}{why}. Nothing was charged.",
            run.status
        )
    } else {
        format!(
            "{label} is {}. Call get_forge_run again in {} seconds.",
            run.status,
            run.poll_interval_seconds.unwrap_or(10)
        )
    };
    (summary.clone(), vec![ContentBlock::text(summary)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_in_the_schema_is_a_typed_client_option() {
        let schema = super::super::schema::input::<ForgeOptions>();
        let names: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for name in names {
            let sample = match schema["properties"][&name]["type"].as_str().unwrap() {
                "boolean" => json!(true),
                "integer" => json!(2),
                "number" => json!(0.5),
                "array" if name == "video_effects" => json!([{"type": "general"}]),
                "array" => json!(["a"]),
                "object" => json!({"sections": []}),
                _ => schema["properties"][&name]["enum"]
                    .get(0)
                    .cloned()
                    .unwrap_or(json!("x")),
            };
            let request: InferenceRequest = serde_json::from_value(json!({
                "model_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", name.clone(): sample
            }))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                request.extra.is_empty(),
                "{name} is not a typed option of the client"
            );
        }
    }

    #[test]
    fn requests_are_built_flat() {
        let args: ExecuteForge = args::read(
            json!({"workspace_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", "model_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f",
                   "prompt": "fox", "batch_size": 1, "seed": 7, "options": {"quality": "high"}})
            .as_object()
            .cloned()
            .unwrap(),
        )
        .unwrap();
        let execute = args.call.request(args.seed, args.session_name);
        assert_eq!(execute.seed, Some(7));
        assert_eq!(execute.batch_size, Some(1));
        assert_eq!(execute.options.quality, Some(Quality::High));
        assert!(execute.extra.is_empty());
        let args: EstimateForgePrice = args::read(
            json!({"workspace_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", "model_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f"})
                .as_object()
                .cloned()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(args.0.request(None, None).seed, None);
    }
}
