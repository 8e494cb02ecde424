//! Forge runs, i.e. inferences (models.py `ExecuteInferenceRequest`,
//! `EstimateInferencePriceRequest`, `EstimateForgePriceOutput`, `ExecuteForgeOutput`,
//! `GetForgeRunOutput`, `ForgeRunAsset`, `ForgeGuidanceFileInput`, `ForgeMaskInput`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{PriceEstimate, Timestamp, null_as_default};
use crate::enums::{
    AudioOutputFormat, GuidanceFileType, ImageAnnotationIntent, ImageAnnotationKind,
    InferenceStatus, MeshDensity, MultiViewSlot, PoseMode, Quality, SegmentBy, SegmentLevel,
    SegmentTarget, SubtitleAlignment, TextureResolution, VideoEffectType,
};
use crate::ids::{FileId, InferenceId, ModelId, SessionId};

/// The body of `POST /workspaces/{ws}/inferences` (execute) and, without `seed` and
/// `session_name`, of `…/inferences/estimate`.
///
/// The core fields are typed here; the modality options (video, 3D, audio, upscale,
/// vectorize…) are typed in [`InferenceOptions`]; anything else goes in `extra` and is sent
/// as is, so a parameter Layer adds later is not lost. Deserialising from JSON (e.g. an MCP
/// tool's arguments) fills all three.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct InferenceRequest {
    /// The model or style to run.
    pub model_id: ModelId,
    /// Text prompt, at most 100 000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Output width in pixels; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Output height in pixels; the model's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Number of outputs, 1 to 16 (server default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Random seed; -1 (the server default) for random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Uploaded files that guide the generation, at most 20.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub guidance_files: Vec<GuidanceFile>,
    /// Mask for inpainting or outpainting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Mask>,
    /// Organise the run under the latest active session of this name (at most 255 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// Modality options.
    #[serde(flatten)]
    pub options: InferenceOptions,
    /// Parameters this client does not model, sent as given. Do not repeat a typed field here.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl InferenceRequest {
    /// A request for `model_id` with every other field unset.
    pub fn new(model_id: ModelId) -> Self {
        Self {
            model_id,
            prompt: None,
            width: None,
            height: None,
            batch_size: None,
            seed: None,
            guidance_files: Vec::new(),
            mask: None,
            session_name: None,
            options: InferenceOptions::default(),
            extra: Map::new(),
        }
    }

    /// Sets the prompt.
    pub fn prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt = Some(prompt.into());
        self
    }

    /// Sets the batch size.
    pub fn batch_size(mut self, batch_size: u32) -> Self {
        self.batch_size = Some(batch_size);
        self
    }

    /// Sets width and height.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = Some(width);
        self.height = Some(height);
        self
    }
}

/// The documented modality options of an inference request; each is honoured only by
/// models whose capabilities report it.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
#[allow(missing_docs)] // names and meanings are models.py's `ExecuteInferenceRequest`
pub struct InferenceOptions {
    /// Style/LoRA strength, 0 to 2 (server default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_inference_steps: Option<u32>,
    /// Classifier-free guidance scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_scale: Option<f64>,
    /// 0 to 1; audio models only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_strength: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness: Option<f64>,
    /// Video clip or audio clip length in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_audio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_audio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrumental: Option<bool>,
    #[serde(rename = "loop", default, skip_serializing_if = "Option::is_none")]
    pub loop_: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<AudioOutputFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyrics: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_plan: Option<CompositionPlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_effects: Option<Vec<VideoEffect>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_preset: Option<String>,
    /// Hex colour, `#FFFFFF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_secondary_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_alignment: Option<SubtitleAlignment>,
    /// Deprecated upstream in favour of `pose_mode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_ta_pose: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pose_mode: Option<PoseMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_textures: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detailed_geometry: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remesh_geometry: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub texture_resolution: Option<TextureResolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_lighting: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_density: Option<MeshDensity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_uvs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_by: Option<SegmentBy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_part_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_target: Option<SegmentTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_parts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_level: Option<SegmentLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_strength: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quad_mesh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbr_materials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_poly: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_parts: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_speaker_boost: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity_boost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style_exaggeration: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscale_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creativity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resemblance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectorize: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_background: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reframe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<bool>,
}

/// An uploaded file guiding a generation (models.py `ForgeGuidanceFileInput`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct GuidanceFile {
    /// The uploaded file.
    pub file_id: FileId,
    /// What the file is (`init_image`, `reference_image`, `pose`…).
    #[serde(rename = "type")]
    pub kind: GuidanceFileType,
    /// Influence, 0 to 1 (server default 0.5 for init, 1 for others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// For multi-view 3D models: the view this image shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<MultiViewSlot>,
    /// Numbered marks saying what to change where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ImageAnnotations>,
}

impl GuidanceFile {
    /// A guidance file with default weight.
    pub fn new(file_id: FileId, kind: GuidanceFileType) -> Self {
        Self {
            file_id,
            kind,
            weight: None,
            view: None,
            annotations: None,
        }
    }
}

/// The marks drawn on one image (models.py `ImageAnnotations`).
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct ImageAnnotations {
    /// At most 32 marks, numbered in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub items: Vec<ImageAnnotation>,
    /// Colour of the marks; chosen against the image when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// One mark on an image (models.py `ImageAnnotation`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct ImageAnnotation {
    /// 1 to 64 characters, unique in the list.
    pub id: String,
    /// Shape.
    pub kind: ImageAnnotationKind,
    /// What to do there (server default `EDIT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<ImageAnnotationIntent>,
    /// Points from (0, 0) top left to (1, 1) bottom right.
    pub points: Vec<AnnotationPoint>,
    /// What to do, at most 500 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Colour of this mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// For a `MOVE` arrow: the box or ellipse it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

/// A point on an image, each coordinate 0 to 1.
#[derive(Clone, Copy, PartialEq, Debug, Serialize, Deserialize)]
pub struct AnnotationPoint {
    /// From the left.
    pub x: f64,
    /// From the top.
    pub y: f64,
}

/// Inpainting/outpainting mask (models.py `ForgeMaskInput`).
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct Mask {
    /// An uploaded mask image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<FileId>,
    /// Use the init image's transparent areas as the mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_transparency: Option<bool>,
    /// Use the non-transparent areas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_nontransparency: Option<bool>,
    /// Edge blur radius in pixels (server default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_radius: Option<u32>,
}

/// A video effect (models.py `ForgeVideoEffectInput`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct VideoEffect {
    /// Which effect.
    #[serde(rename = "type")]
    pub kind: VideoEffectType,
    /// Strength, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// A music track as ordered sections (models.py `CompositionPlan`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct CompositionPlan {
    /// Styles for the whole track.
    #[serde(default, deserialize_with = "null_as_default")]
    pub positive_styles: Vec<String>,
    /// Styles kept out of the whole track.
    #[serde(default, deserialize_with = "null_as_default")]
    pub negative_styles: Vec<String>,
    /// 1 to 30 sections.
    pub sections: Vec<MusicSection>,
    /// Server default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_section_durations: Option<bool>,
}

/// One section of a planned track (models.py `MusicSection`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct MusicSection {
    /// 1 to 100 characters.
    pub name: String,
    /// 3 to 120 seconds.
    pub duration_seconds: f64,
    /// Styles entering here.
    #[serde(default, deserialize_with = "null_as_default")]
    pub positive_styles: Vec<String>,
    /// Styles leaving here.
    #[serde(default, deserialize_with = "null_as_default")]
    pub negative_styles: Vec<String>,
    /// Sung lines.
    #[serde(default, deserialize_with = "null_as_default")]
    pub lines: Vec<String>,
}

/// What an inference would cost (models.py `EstimateForgePriceOutput`).
pub type InferenceEstimate = PriceEstimate;

/// Parameters after the model's normalisation and defaults.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct NormalizedParameters {
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub batch_size: Option<u32>,
    #[serde(default)]
    pub num_inference_steps: Option<u32>,
    #[serde(default)]
    pub guidance_scale: Option<f64>,
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    #[serde(default)]
    pub fps: Option<u32>,
}

/// The answer to an execute (models.py `ExecuteForgeOutput`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct InferenceStarted {
    /// Poll this.
    pub inference_id: InferenceId,
    /// Normally `in_progress`.
    pub status: InferenceStatus,
    /// What was reserved.
    #[serde(default)]
    pub estimated_price_creative_units: Option<f64>,
    /// Wait this long between polls.
    pub poll_interval_seconds: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// The session it was added to.
    #[serde(default)]
    pub session_id: Option<SessionId>,
    /// Parameters actually used.
    #[serde(default)]
    pub normalized_parameters: Option<NormalizedParameters>,
}

/// A run as polled (models.py `GetForgeRunOutput`); cancel answers the same shape.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct InferenceRun {
    /// The run.
    pub inference_id: InferenceId,
    /// Where it is.
    pub status: InferenceStatus,
    /// While in progress: wait this long between polls.
    #[serde(default)]
    pub poll_interval_seconds: Option<u64>,
    /// On `complete`.
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    /// On `complete`: the generated files.
    #[serde(default)]
    pub outputs: Option<Vec<RunAsset>>,
    /// On `complete`: what was charged.
    #[serde(default)]
    pub actual_price_creative_units: Option<f64>,
    /// On `failed`: what went wrong.
    #[serde(default)]
    pub error: Option<String>,
    /// On `failed`: `INSUFFICIENT_BALANCE`, `CONTENT_POLICY_VIOLATION`…
    #[serde(default)]
    pub error_code: Option<String>,
}

/// A generated file (models.py `ForgeRunAsset`; workflow outputs add `object_id` and
/// `object_type`, see [`crate::types::workflows::WorkflowRunAsset`]).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct RunAsset {
    /// Pass as a guidance file in a later run.
    pub file_id: FileId,
    /// Download URL.
    pub url: String,
    /// MIME type, e.g. `image/png`.
    pub content_type: String,
    /// Thumbnail URL.
    #[serde(default)]
    pub preview_url: Option<String>,
    /// Pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels.
    #[serde(default)]
    pub height: Option<u32>,
    /// Video or audio length.
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    /// Size.
    #[serde(default)]
    pub file_size_bytes: Option<u64>,
    /// Engine metadata (tile, nine-slice, sprite sheet), as sent.
    #[serde(default)]
    pub metadata: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enums::GuidanceFileType;

    const MODEL: &str = "6f1c2b4e-8a9d-4c3b-9e2f-1a2b3c4d5e6f";

    #[test]
    fn request_serialises_flat_and_skips_unset_fields() {
        let mut req = InferenceRequest::new(MODEL.parse().unwrap())
            .prompt("a red fox")
            .batch_size(2);
        req.options.loop_ = Some(true);
        req.options.texture_resolution = Some(TextureResolution::Res4k);
        req.guidance_files.push(GuidanceFile::new(
            "0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e11".parse().unwrap(),
            GuidanceFileType::ReferenceImage,
        ));
        req.extra.insert("future_knob".into(), Value::from(3));
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "model_id": MODEL,
                "prompt": "a red fox",
                "batch_size": 2,
                "guidance_files": [{"file_id": "0b0e3f6a-3c1d-4e55-9a7e-2b1f6c0d9e11", "type": "reference_image"}],
                "loop": true,
                "texture_resolution": "RES_4K",
                "future_knob": 3
            })
        );
    }

    #[test]
    fn request_deserialises_into_typed_options_and_extra() {
        let req: InferenceRequest = serde_json::from_value(serde_json::json!({
            "model_id": MODEL,
            "prompt": "x",
            "duration_seconds": 5,
            "pose_mode": "t_pose",
            "guidance_files": null,
            "brand_new_option": "kept"
        }))
        .unwrap();
        assert_eq!(req.options.duration_seconds, Some(5.0));
        assert_eq!(req.options.pose_mode, Some(PoseMode::TPose));
        assert!(req.guidance_files.is_empty());
        assert_eq!(req.extra.len(), 1);
        assert_eq!(req.extra["brand_new_option"], "kept");
    }

    #[test]
    fn run_tolerates_unknown_fields_and_statuses() {
        let run: InferenceRun = serde_json::from_value(serde_json::json!({
            "inference_id": MODEL,
            "status": "COMPLETE",
            "outputs": [{"file_id": MODEL, "url": "http://x/a.png", "content_type": "image/png", "width": 64, "surprise": 1}],
            "actual_price_creative_units": 4.5,
            "new_field": {"a": 1}
        }))
        .unwrap();
        assert!(run.status.is_success());
        assert_eq!(run.outputs.unwrap()[0].width, Some(64));
    }
}
