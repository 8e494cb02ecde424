//! Request bodies as models.py defines them (`EstimateInferencePriceRequest`,
//! `ExecuteInferenceRequest`, `EstimateWorkflowPriceRequest`, `ExecuteWorkflowRequest`,
//! `RequestUploadUrlRequest`), as validation tables.

use std::sync::OnceLock;

use crate::validation::{
    Check, Field, float, float_gt0, float_range, int, int_gt0, int_range, list, string,
};

pub const GUIDANCE_FILE_TYPES: &[&str] = &[
    "init_image",
    "reference_image",
    "scribble",
    "color_sketch",
    "pose",
    "depth",
    "canny",
    "softedge_hed",
    "segmentation",
    "lineart",
    "face",
    "ip_adapter",
    "first_frame",
    "last_frame",
    "init_video",
    "reference_video",
    "draft_video",
    "init_mesh",
    "texture_image",
    "draft_mesh",
    "element_frontal_image",
    "element_reference_image",
    "element_video",
    "draft_world",
    "init_audio",
    "reference_audio",
];

pub const FILE_SOURCE_TYPES: &[&str] = &[
    "pose",
    "reference",
    "mask",
    "composite",
    "google_drive",
    "miro",
    "transformed_reference",
    "skill_resource",
    "skill_bundle",
];

fn enum_of(values: &'static [&'static str]) -> Check {
    Check::Enum(values)
}

fn guidance_file() -> Check {
    Check::Object(vec![
        Field::req("file_id", Check::Uuid),
        Field::req("type", enum_of(GUIDANCE_FILE_TYPES)),
        Field::opt("weight", float_range(0.0, 1.0)),
        Field::opt("view", enum_of(&["FRONT", "LEFT", "BACK", "RIGHT"])),
        Field::opt("annotations", Check::Dict),
    ])
}

fn mask() -> Check {
    Check::Object(vec![
        Field::opt("file_id", Check::Uuid),
        Field::opt("for_transparency", Check::Bool),
        Field::opt("for_nontransparency", Check::Bool),
        Field::opt("edge_radius", int_range(0, None)),
    ])
}

fn video_effect() -> Check {
    Check::Object(vec![
        Field::req("type", string(None)),
        Field::opt("weight", float_range(0.0, 100.0)),
    ])
}

fn composition_plan() -> Check {
    Check::Object(vec![
        Field::opt("positive_styles", list(string(None), None)),
        Field::opt("negative_styles", list(string(None), None)),
        Field::req(
            "sections",
            Check::List {
                item: Box::new(Check::Object(vec![
                    Field::req(
                        "name",
                        Check::Str {
                            min_len: Some(1),
                            max_len: Some(100),
                        },
                    ),
                    Field::req("duration_seconds", float_range(3.0, 120.0)),
                    Field::opt("positive_styles", list(string(None), None)),
                    Field::opt("negative_styles", list(string(None), None)),
                    Field::opt("lines", list(string(None), None)),
                ])),
                min: Some(1),
                max: Some(30),
            },
        ),
        Field::opt("respect_section_durations", Check::Bool),
    ])
}

fn inference_fields(execute: bool) -> Vec<Field> {
    let mut fields = vec![
        Field::opt("subtitle_preset", string(None)),
        Field::opt("subtitle_color", Check::HexColor),
        Field::opt("subtitle_secondary_color", Check::HexColor),
        Field::opt("subtitle_alignment", enum_of(&["top", "center", "bottom"])),
        Field::req("model_id", Check::Uuid),
        Field::opt("weight", float_range(0.0, 2.0)),
        Field::opt("prompt", string(Some(100_000))),
        Field::opt("width", int_gt0()),
        Field::opt("height", int_gt0()),
        Field::opt("batch_size", int_range(1, Some(16))),
        Field::opt("num_inference_steps", int_gt0()),
        Field::opt("guidance_scale", float()),
        Field::opt("prompt_strength", float_range(0.0, 1.0)),
        Field::opt("quality", enum_of(&["low", "medium", "high"])),
        Field::opt("sharpness", float()),
        Field::opt("duration_seconds", float_gt0()),
        Field::opt("generate_audio", Check::Bool),
        Field::opt("keep_audio", Check::Bool),
        Field::opt("instrumental", Check::Bool),
        Field::opt("loop", Check::Bool),
        Field::opt("output_format", enum_of(&["mp3", "wav", "aac", "flac"])),
        Field::opt("lyrics", string(None)),
        Field::opt("composition_plan", composition_plan()),
        Field::opt("fps", int_gt0()),
        Field::opt("video_effects", list(video_effect(), None)),
        Field::opt("use_ta_pose", Check::Bool),
        Field::opt("pose_mode", enum_of(&["A_POSE", "T_POSE"])),
        Field::opt("include_textures", Check::Bool),
        Field::opt("detailed_geometry", Check::Bool),
        Field::opt("remesh_geometry", Check::Bool),
        Field::opt(
            "texture_resolution",
            enum_of(&["RES_2K", "RES_4K", "RES_8K"]),
        ),
        Field::opt("remove_lighting", Check::Bool),
        Field::opt("mesh_density", enum_of(&["ULTRA", "HIGH", "MEDIUM", "LOW"])),
        Field::opt("preserve_uvs", Check::Bool),
        Field::opt("segment_by", enum_of(&["AUTO", "PARTS"])),
        Field::opt("segment_part_names", list(string(None), Some(10))),
        Field::opt("segment_target", enum_of(&["CHARACTER", "GENERAL"])),
        Field::opt("segment_parts", int_range(1, None)),
        Field::opt("segment_level", enum_of(&["LOW", "MEDIUM", "HIGH"])),
        Field::opt("segment_strength", int_range(1, None)),
        Field::opt("quad_mesh", Check::Bool),
        Field::opt("pbr_materials", Check::Bool),
        Field::opt("low_poly", Check::Bool),
        Field::opt("generate_parts", Check::Bool),
        Field::opt("face_limit", int_gt0()),
        Field::opt("stability", float_range(0.0, 1.0)),
        Field::opt("use_speaker_boost", Check::Bool),
        Field::opt("similarity_boost", float_range(0.0, 1.0)),
        Field::opt("style_exaggeration", float_range(0.0, 1.0)),
        Field::opt("speed", float_gt0()),
        Field::opt("upscale_ratio", float()),
        Field::opt("creativity", float()),
        Field::opt("resemblance", float()),
        Field::opt("vectorize", Check::Bool),
        Field::opt("remove_background", Check::Bool),
        Field::opt("reframe", Check::Bool),
        Field::opt("refill", Check::Bool),
    ];
    if execute {
        fields.push(Field::opt("seed", int()));
    }
    fields.push(Field::opt(
        "guidance_files",
        list(guidance_file(), Some(20)),
    ));
    fields.push(Field::opt("mask", mask()));
    if execute {
        fields.push(Field::opt("session_name", string(Some(255))));
    }
    fields
}

/// `EstimateInferencePriceRequest`.
pub fn estimate_inference() -> &'static [Field] {
    static F: OnceLock<Vec<Field>> = OnceLock::new();
    F.get_or_init(|| inference_fields(false))
}

/// `ExecuteInferenceRequest`.
pub fn execute_inference() -> &'static [Field] {
    static F: OnceLock<Vec<Field>> = OnceLock::new();
    F.get_or_init(|| inference_fields(true))
}

/// `EstimateWorkflowPriceRequest`.
pub fn estimate_workflow() -> &'static [Field] {
    static F: OnceLock<Vec<Field>> = OnceLock::new();
    F.get_or_init(|| vec![Field::req("inputs", Check::Dict)])
}

/// `ExecuteWorkflowRequest`.
pub fn execute_workflow() -> &'static [Field] {
    static F: OnceLock<Vec<Field>> = OnceLock::new();
    F.get_or_init(|| {
        vec![
            Field::req("inputs", Check::Dict),
            Field::opt("session_id", Check::Uuid),
            Field::opt("session_name", string(Some(255))),
            Field::opt(
                "webhook",
                Check::Object(vec![
                    Field::req("url", string(Some(2048))),
                    Field::opt("events", list(string(None), None)),
                    Field::opt("metadata", Check::Dict),
                ]),
            ),
        ]
    })
}

/// `RequestUploadUrlRequest`.
pub fn upload_url() -> &'static [Field] {
    static F: OnceLock<Vec<Field>> = OnceLock::new();
    F.get_or_init(|| {
        vec![
            Field::req("content_type", string(None)),
            Field::opt("file_name", string(None)),
            Field::req("file_size_bytes", int_gt0()),
            Field::opt("source_type", enum_of(FILE_SOURCE_TYPES)),
        ]
    })
}
