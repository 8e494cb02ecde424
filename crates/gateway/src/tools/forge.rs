//! `estimate_forge_price`, `execute_forge`, `get_forge_run`.

use layer_api::{
    AudioOutputFormat, GuidanceFileType, InferenceId, InferenceRequest, InferenceRun, MeshDensity,
    PoseMode, Quality, SegmentBy, SegmentLevel, SegmentTarget, SubtitleAlignment,
    TextureResolution, VideoEffectType, WorkspaceId,
};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};

use super::runs::{OutputFile, resource_links, success_summary};
use super::schema::{
    array, boolean, enumeration, integer, nullable, number, object, open_object, string,
    string_max, uuid,
};
use super::{Args, Behaviour, ToolContext, ToolSpec, success, to_json};
use crate::errors::{Subject, ToolError};
use crate::upstream::{CallKind, Outcome};

fn known<E>(values: &'static [E], as_str: fn(&E) -> &str) -> Vec<&'static str> {
    values.iter().map(as_str).collect()
}

/// The modality options: names and types follow models.py's `ExecuteInferenceRequest`.
pub fn options_schema() -> Value {
    let b = |d: &str| boolean(d);
    object(
        vec![
            (
                "weight",
                number(
                    "Style/LoRA strength: 1 as trained, lower weakens, higher over-applies.",
                    Some(0.0),
                    Some(2.0),
                ),
            ),
            (
                "num_inference_steps",
                integer("Diffusion steps.", 1, None, None),
            ),
            (
                "guidance_scale",
                number("Classifier-free guidance scale.", None, None),
            ),
            (
                "prompt_strength",
                number(
                    "Audio models: how closely the audio follows the prompt (0-1).",
                    Some(0.0),
                    Some(1.0),
                ),
            ),
            (
                "quality",
                enumeration("Quality level.", known(Quality::KNOWN, Quality::as_str)),
            ),
            ("sharpness", number("Output sharpness.", None, None)),
            (
                "duration_seconds",
                number(
                    "Video or audio clip length in seconds, within the model's supported range.",
                    Some(0.0),
                    None,
                ),
            ),
            ("generate_audio", b("Generate audio with the video.")),
            ("keep_audio", b("Keep the input video's audio.")),
            (
                "instrumental",
                b("Music without vocals (models reporting instrumental)."),
            ),
            (
                "loop",
                b("Make the clip loop seamlessly (models reporting loop)."),
            ),
            (
                "output_format",
                enumeration(
                    "Audio container.",
                    known(AudioOutputFormat::KNOWN, AudioOutputFormat::as_str),
                ),
            ),
            ("lyrics", string("Words to sing (models reporting lyrics).")),
            (
                "composition_plan",
                json!({"type": "object", "description": "Music as ordered sections {positive_styles, negative_styles, sections:[{name, duration_seconds, positive_styles, negative_styles, lines}]} (models reporting composition_plan)."}),
            ),
            (
                "fps",
                integer(
                    "Frames per second of the video (e.g. 25 or 50).",
                    1,
                    None,
                    None,
                ),
            ),
            (
                "video_effects",
                array(
                    "Video effects to apply.",
                    object(
                        vec![
                            (
                                "type",
                                enumeration(
                                    "The effect.",
                                    known(VideoEffectType::KNOWN, VideoEffectType::as_str),
                                ),
                            ),
                            ("weight", number("Effect strength.", None, None)),
                        ],
                        &["type"],
                    ),
                    None,
                ),
            ),
            (
                "subtitle_preset",
                string("Caption style, one of the model's subtitle_presets."),
            ),
            (
                "subtitle_color",
                string("Caption colour as hex, e.g. #FFFFFF."),
            ),
            (
                "subtitle_secondary_color",
                string("Colour of emphasised words, as hex."),
            ),
            (
                "subtitle_alignment",
                enumeration(
                    "Where captions sit.",
                    known(SubtitleAlignment::KNOWN, SubtitleAlignment::as_str),
                ),
            ),
            ("use_ta_pose", b("Deprecated: use pose_mode.")),
            (
                "pose_mode",
                enumeration(
                    "Rest pose of a character mesh.",
                    known(PoseMode::KNOWN, PoseMode::as_str),
                ),
            ),
            ("include_textures", b("Include textures in 3D output.")),
            ("detailed_geometry", b("Denser geometry (costs extra).")),
            (
                "remesh_geometry",
                b("false keeps the provider's raw geometry."),
            ),
            (
                "texture_resolution",
                enumeration(
                    "Base colour texture size (RES_8K costs extra).",
                    known(TextureResolution::KNOWN, TextureResolution::as_str),
                ),
            ),
            ("remove_lighting", b("Strip baked lighting from textures.")),
            (
                "mesh_density",
                enumeration(
                    "Adaptive face count.",
                    known(MeshDensity::KNOWN, MeshDensity::as_str),
                ),
            ),
            (
                "preserve_uvs",
                b("Keep the mesh's UV layout when retexturing."),
            ),
            (
                "segment_by",
                enumeration(
                    "Split a mesh along: AUTO or PARTS.",
                    known(SegmentBy::KNOWN, SegmentBy::as_str),
                ),
            ),
            (
                "segment_part_names",
                array(
                    "Parts to split along when segment_by is PARTS.",
                    string("A part name."),
                    Some(10),
                ),
            ),
            (
                "segment_target",
                enumeration(
                    "What a mesh split treats the mesh as.",
                    known(SegmentTarget::KNOWN, SegmentTarget::as_str),
                ),
            ),
            (
                "segment_parts",
                integer("How many parts a CHARACTER split makes.", 1, None, None),
            ),
            (
                "segment_level",
                enumeration(
                    "How finely a GENERAL split cuts.",
                    known(SegmentLevel::KNOWN, SegmentLevel::as_str),
                ),
            ),
            (
                "segment_strength",
                integer("How aggressively a mesh split cuts.", 0, None, None),
            ),
            ("quad_mesh", b("Quad mesh.")),
            ("pbr_materials", b("PBR materials.")),
            ("low_poly", b("Low-poly mesh.")),
            ("generate_parts", b("Separate parts.")),
            (
                "face_limit",
                integer("Face/polygon limit of the mesh.", 1, None, None),
            ),
            (
                "stability",
                number("Speech stability (0-1).", Some(0.0), Some(1.0)),
            ),
            ("use_speaker_boost", b("Boost speaker clarity.")),
            (
                "similarity_boost",
                number("Voice similarity boost (0-1).", Some(0.0), Some(1.0)),
            ),
            (
                "style_exaggeration",
                number("Style exaggeration (0-1).", Some(0.0), Some(1.0)),
            ),
            ("speed", number("Speech speed multiplier.", Some(0.0), None)),
            (
                "upscale_ratio",
                number("Upscale factor, e.g. 2 or 4.", Some(0.0), None),
            ),
            (
                "creativity",
                number("Creative variation when upscaling.", None, None),
            ),
            (
                "resemblance",
                number("Resemblance to the original when upscaling.", None, None),
            ),
            ("vectorize", b("Vectorize the output image.")),
            (
                "remove_background",
                b("Remove the background from the output."),
            ),
            ("reframe", b("Reframe/extend the image.")),
            ("refill", b("Outpaint transparent areas.")),
        ],
        &[],
    )
}

fn guidance_file_schema() -> Value {
    object(
        vec![
            (
                "file_id",
                uuid("An uploaded file, from upload_file or request_file_upload_url."),
            ),
            (
                "type",
                enumeration(
                    "The slot the file fills; must be one of the model's capabilities.guidance_file_types.",
                    known(GuidanceFileType::KNOWN, GuidanceFileType::as_str),
                ),
            ),
            (
                "weight",
                number(
                    "Influence 0-1 (default 0.5 for init_image, 1 otherwise).",
                    Some(0.0),
                    Some(1.0),
                ),
            ),
        ],
        &["file_id", "type"],
    )
}

fn mask_schema() -> Value {
    object(
        vec![
            (
                "file_id",
                uuid("A mask image uploaded with source_type mask."),
            ),
            (
                "for_transparency",
                boolean("Repaint the init image's transparent area."),
            ),
            (
                "for_nontransparency",
                boolean("Repaint the non-transparent area."),
            ),
            (
                "edge_radius",
                integer("Blur radius of the mask edge, pixels.", 0, None, Some(0)),
            ),
        ],
        &[],
    )
}

/// The request properties shared by estimate and execute.
fn request_properties() -> Vec<(&'static str, Value)> {
    vec![
        ("workspace_id", uuid("The workspace, from list_workspaces.")),
        (
            "model_id",
            uuid("The model, from list_models or get_model_recommendations."),
        ),
        (
            "prompt",
            string_max(
                "What to make. Follow the model's prompt_format (get_model).",
                100_000,
            ),
        ),
        (
            "width",
            integer(
                "Output width in pixels; the model's default when omitted.",
                1,
                Some(16_384),
                None,
            ),
        ),
        (
            "height",
            integer(
                "Output height in pixels; the model's default when omitted.",
                1,
                Some(16_384),
                None,
            ),
        ),
        (
            "batch_size",
            integer(
                "Number of outputs; the price scales with it. Use 1 while exploring.",
                1,
                Some(16),
                Some(4),
            ),
        ),
        (
            "guidance_files",
            array(
                "Reference files that guide the generation.",
                guidance_file_schema(),
                Some(20),
            ),
        ),
        ("mask", mask_schema()),
        ("options", options_schema()),
    ]
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

pub fn specs() -> Vec<ToolSpec> {
    let mut execute_props = request_properties();
    execute_props.push((
        "seed",
        integer(
            "Seed for reproducible output; -1 or omitted for random.",
            -1,
            None,
            Some(-1),
        ),
    ));
    execute_props.push((
        "session_name",
        string_max(
            "Group the run under a session of this name in the Layer app.",
            255,
        ),
    ));
    execute_props.push((
        "idempotency_key",
        string_max("Any unique string (e.g. a UUID). Retrying with the same key and arguments returns the run already started instead of starting another.", 255),
    ));
    let run_schema = open_object(
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
    );
    vec![
        ToolSpec {
            name: "estimate_forge_price",
            title: "Estimate a model run",
            description: "Prices a model run (forge) without running it: returns estimated_price_creative_units, the available balance, the balance after the run and has_sufficient_creative_units. Pass exactly the arguments you will give execute_forge (price depends on model, batch_size, size, duration and 3D options). If the price is above about 20 Creative Units, ask the user before executing. Costs nothing. See get_forge_instructions for every parameter.".to_owned(),
            input: object(request_properties(), &["workspace_id", "model_id"]),
            output: estimate_schema(),
            behaviour: Behaviour::ReadOnly,
        },
        ToolSpec {
            name: "execute_forge",
            title: "Run a model",
            description: "Starts a model run (forge) and returns at once with inference_id, status in_progress, poll_interval_seconds and the estimated price, which is reserved from the workspace balance. Estimate first with the same arguments and ask the user before spending more than about 20 Creative Units. Then poll get_forge_run every poll_interval_seconds until the status is terminal. At most 5 runs may be in progress per user per workspace. Pass idempotency_key to retry safely.".to_owned(),
            input: object(execute_props, &["workspace_id", "model_id"]),
            output: open_object(
                vec![
                    ("workspace_id", uuid("The workspace.")),
                    ("inference_id", uuid("Poll it with get_forge_run.")),
                    ("status", string("in_progress.")),
                    ("poll_interval_seconds", integer("Wait this long before polling.", 0, None, None)),
                    ("estimated_price_creative_units", nullable(number("Reserved now; the final charge is equal or lower.", None, None))),
                    ("created_at", json!({"type": "string", "format": "date-time"})),
                    ("session_id", nullable(uuid("The Layer session it belongs to."))),
                    ("normalized_parameters", nullable(json!({"type": "object", "description": "The parameters as Layer will apply them."}))),
                    ("next_step", string("What to do next.")),
                ],
                &["workspace_id", "inference_id", "status", "poll_interval_seconds"],
            ),
            behaviour: Behaviour::Writes { destructive: false, idempotent: false, open_world: false },
        },
        ToolSpec {
            name: "get_forge_run",
            title: "Check a model run",
            description: "Returns a model run's status. While in_progress, wait poll_interval_seconds and call again. When complete: the outputs (url, content_type, size, dimensions), actual_price_creative_units, a resource link per output and a summary with the balance left: show them to the user. failed: error and error_code say why (nothing is charged).".to_owned(),
            input: object(
                vec![
                    ("workspace_id", uuid("The workspace the run was started in.")),
                    ("inference_id", uuid("From execute_forge.")),
                ],
                &["workspace_id", "inference_id"],
            ),
            output: run_schema,
            behaviour: Behaviour::ReadOnly,
        },
    ]
}

/// Builds the upstream request from the arguments (already checked against the schema).
fn build_request(args: &Args, execute: bool) -> Result<InferenceRequest, ToolError> {
    let mut body = Map::new();
    let mut core = vec![
        "model_id",
        "prompt",
        "width",
        "height",
        "batch_size",
        "guidance_files",
        "mask",
    ];
    if execute {
        core.extend(["seed", "session_name"]);
    }
    for key in core {
        if let Some(value) = args.raw(key) {
            body.insert(key.to_owned(), value.clone());
        }
    }
    if let Some(options) = args.opt_object("options")? {
        for (key, value) in options {
            if !value.is_null() {
                body.insert(key, value);
            }
        }
    }
    let request: InferenceRequest = serde_json::from_value(Value::Object(body)).map_err(|e| {
        ToolError::invalid(format!("The arguments do not form a valid request: {e}"))
    })?;
    if let Some(unknown) = request.extra.keys().next() {
        return Err(ToolError::invalid(format!(
            "Unknown option `{unknown}`: see get_forge_instructions"
        )));
    }
    Ok(request)
}

pub async fn estimate_forge_price(
    ctx: &ToolContext,
    args: Args,
) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let request = build_request(&args, false)?;
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Read)
        .await?;
    let result = admission
        .client()
        .estimate_inference(workspace, &request)
        .await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let estimate = result.map_err(|e| ToolError::from_layer(&e, Subject::Model))?;
    Ok(success(to_json(&estimate)?, vec![]))
}

pub async fn execute_forge(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let request = build_request(&args, true)?;
    let key = args.idempotency_key()?;
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::StartRun)
        .await?
        .with_idempotency_key(key);
    let result = admission
        .client()
        .execute_inference(workspace, &request)
        .await;
    match &result {
        Ok(started) => admission.settle(Outcome::RunStarted(started.inference_id.to_string())),
        Err(_) => admission.settle(Outcome::Failed),
    }
    let started = result.map_err(|e| ToolError::from_layer(&e, Subject::Model))?;
    let mut structured = to_json(&started)?;
    structured["workspace_id"] = json!(workspace.to_string());
    structured["next_step"] = json!(format!(
        "Call get_forge_run with workspace_id {workspace} and inference_id {} in {} seconds, and again every poll_interval_seconds until the status is complete, failed or cancelled.",
        started.inference_id, started.poll_interval_seconds
    ));
    Ok(success(structured, vec![]))
}

pub async fn get_forge_run(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let inference: InferenceId = args.id("inference_id")?;
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::PollRun)
        .await?;
    let client = admission.client();
    let result = client.get_inference(workspace, inference).await;
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            admission.settle(Outcome::Failed);
            return Err(ToolError::from_layer(&e, Subject::Run));
        }
    };
    let terminal = run.status.is_terminal();
    // The balance left, for the summary; a failure here does not fail the poll.
    let balance = if run.status.is_success() {
        client
            .get_workspace(workspace)
            .await
            .ok()
            .map(|w| (w.name, w.available_creative_units))
    } else {
        None
    };
    admission.settle(if terminal {
        Outcome::RunEnded(inference.to_string())
    } else {
        Outcome::Done
    });
    let (summary, blocks) = describe_run(&run, balance);
    let mut structured = to_json(&run)?;
    structured["workspace_id"] = json!(workspace.to_string());
    structured["summary"] = json!(summary);
    Ok(success(structured, blocks))
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
        let schema = options_schema();
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
        let args = Args::parse(
            json!({"workspace_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", "model_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f",
                   "prompt": "fox", "batch_size": 1, "seed": 7, "options": {"quality": "high"}})
            .as_object()
            .cloned(),
            &["workspace_id", "model_id", "prompt", "batch_size", "seed", "options"],
        )
        .unwrap();
        let execute = build_request(&args, true).unwrap();
        assert_eq!(execute.seed, Some(7));
        assert_eq!(execute.options.quality, Some(Quality::High));
        let estimate = build_request(&args, false).unwrap();
        assert_eq!(estimate.seed, None);
    }
}
