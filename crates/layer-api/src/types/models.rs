//! Models (models.py `ModelSummary`, `ModelDetailREST`, `ModelCapabilitiesREST`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::enums::Modality;
use crate::ids::ModelId;
use crate::pagination::{Cursor, PageLimit, Pagination};

/// A model as listed.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Pass as `model_id` to estimate or execute.
    pub model_id: ModelId,
    /// Display name.
    pub name: String,
    /// What it produces.
    pub modality: Modality,
    /// Base model identifier, e.g. `flux_2_pro`.
    #[serde(default)]
    pub base_model_id: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Typical generation time, e.g. `5-15s`.
    pub inference_timing: String,
}

/// A model in full.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct ModelDetail {
    /// Pass as `model_id` to estimate or execute.
    pub model_id: ModelId,
    /// Display name.
    pub name: String,
    /// What it produces.
    pub modality: Modality,
    /// Base model identifier.
    #[serde(default)]
    pub base_model_id: Option<String>,
    /// Base model display name.
    #[serde(default)]
    pub base_model_name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Typical generation time.
    pub inference_timing: String,
    /// What it can do.
    pub capabilities: ModelCapabilities,
    /// How it wants its prompt written.
    #[serde(default)]
    pub prompt_format: Option<String>,
}

/// What a model can do. Every field is optional; capabilities the server reports beyond
/// models.py's list are kept in `other` rather than dropped, so the gateway can pass them on.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
#[allow(missing_docs)] // field names are models.py's and self-describing
pub struct ModelCapabilities {
    /// Supported modes, e.g. `create`, `create_video`, `prompt_edit_image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_modes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_prompt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_prompt_required: Option<bool>,
    /// Longest prompt in characters; `None` when unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prompt_chars: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inpainting: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outpainting: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tileability: Option<bool>,
    /// Guidance types it takes: pose, depth, canny, lineart, `prompt` (style reference)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_file_types: Option<Vec<String>>,
    /// Video durations it generates, in seconds (integers in models.py; kept as sent, so a
    /// fractional one added later neither breaks decoding nor changes on re-encoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<Vec<serde_json::Number>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds_max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_aspect_ratio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_audio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lipsync: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub textures: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quad_mesh: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbr_materials: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_to_speech: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound_effect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub music: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_changer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_to_dialogue: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_separation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_isolation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_inpaint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_outpaint: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_denoise: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_presets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_dynamic_presets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_primary_color: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_secondary_color: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_alignment: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle_text_srt: Option<bool>,
    /// Capabilities not in models.py, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `GET /workspaces/{ws}/models` query (docs/layer-api.md choice 2).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ListModelsQuery {
    /// Only models of this modality.
    pub modality: Option<Modality>,
    /// Only models with every one of these capabilities (`inpainting`, `style_reference`,
    /// `text_to_3d`, `lipsync`…); sent as repeated `capability` parameters.
    pub capabilities: Vec<String>,
    /// Free-text search over name and description.
    pub search: Option<String>,
    /// Page size.
    pub limit: Option<PageLimit>,
    /// Where to continue.
    pub cursor: Option<Cursor>,
}

#[derive(Deserialize)]
pub(crate) struct ListModelsOutput {
    pub models: Vec<ModelSummary>,
    pub pagination: Pagination,
}

#[derive(Deserialize)]
pub(crate) struct GetModelOutput {
    pub model: ModelDetail,
}
