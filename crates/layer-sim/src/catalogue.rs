//! The models and workflows every workspace sees, plus custom styles named by fixtures.

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::ids::{ModelId, WorkflowId, WorkspaceId};

/// `ModelCapabilitiesREST`: every field, always present.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Capabilities {
    pub session_modes: Option<Vec<&'static str>>,
    pub text_prompt: bool,
    pub text_prompt_required: bool,
    pub max_prompt_chars: Option<u32>,
    pub negative_prompt: bool,
    pub seed: bool,
    pub inpainting: bool,
    pub outpainting: bool,
    pub tileability: bool,
    pub guidance_file_types: Option<Vec<&'static str>>,
    pub duration_seconds: Option<Vec<u32>>,
    pub duration_seconds_min: Option<f64>,
    pub duration_seconds_max: Option<f64>,
    pub duration_seconds_required: bool,
    pub auto_aspect_ratio: bool,
    pub generate_audio: bool,
    pub lipsync: bool,
    pub textures: bool,
    pub quad_mesh: bool,
    pub pbr_materials: bool,
    pub text_to_speech: bool,
    pub sound_effect: bool,
    pub music: bool,
    pub voice_changer: bool,
    pub text_to_dialogue: bool,
    pub audio_separation: bool,
    pub audio_isolation: bool,
    pub audio_inpaint: bool,
    pub audio_outpaint: bool,
    pub audio_denoise: bool,
    pub subtitle_presets: Option<Vec<&'static str>>,
    pub subtitle_dynamic_presets: Option<Vec<&'static str>>,
    pub subtitle_primary_color: bool,
    pub subtitle_secondary_color: bool,
    pub subtitle_alignment: bool,
    pub subtitle_text_srt: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Image,
    Video,
    ThreeD,
    Audio,
}

impl Modality {
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Image => "image",
            Modality::Video => "video",
            Modality::ThreeD => "three_d",
            Modality::Audio => "audio",
        }
    }
}

/// How a model's runs are priced (see the README's pricing table).
#[derive(Clone, Copy, Debug)]
pub enum PriceRule {
    /// Creative Units per image per megapixel (rounded up to a quarter, at least a quarter).
    PerImageMegapixel(f64),
    /// Creative Units per second of video; `audio` multiplies when `generate_audio` is on.
    PerVideoSecond { rate: f64, audio: f64 },
    /// A 3D asset: base plus options.
    Mesh { base: f64 },
    /// Creative Units per started 100 characters of prompt (text to speech).
    PerHundredChars(f64),
    /// Creative Units per second of generated audio.
    PerAudioSecond(f64),
}

#[derive(Clone, Debug)]
pub struct ModelDef {
    pub key: &'static str,
    pub id: ModelId,
    pub name: &'static str,
    pub modality: Modality,
    pub base_model_id: &'static str,
    pub base_model_name: &'static str,
    pub description: &'static str,
    pub inference_timing: &'static str,
    pub prompt_format: Option<&'static str>,
    pub capabilities: Capabilities,
    pub price: PriceRule,
    /// Default output size (images and video).
    pub default_size: Option<(u32, u32)>,
    /// Largest width or height accepted.
    pub max_side: u32,
    /// Guidance types that must be present (e.g. an image-to-3D model needs its image).
    pub required_guidance: &'static [&'static str],
    /// Custom styles: only workspaces whose fixtures name this key see it.
    pub custom: bool,
}

impl ModelDef {
    pub fn summary(&self) -> Value {
        json!({
            "model_id": self.id,
            "name": self.name,
            "modality": self.modality.as_str(),
            "base_model_id": self.base_model_id,
            "description": self.description,
            "inference_timing": self.inference_timing,
        })
    }

    pub fn detail(&self) -> Value {
        json!({
            "model_id": self.id,
            "name": self.name,
            "modality": self.modality.as_str(),
            "base_model_id": self.base_model_id,
            "base_model_name": self.base_model_name,
            "description": self.description,
            "inference_timing": self.inference_timing,
            "capabilities": self.capabilities,
            "prompt_format": self.prompt_format,
        })
    }

    pub fn supports_guidance(&self, kind: &str) -> bool {
        self.capabilities
            .guidance_file_types
            .as_ref()
            .is_some_and(|t| t.contains(&kind))
    }

    /// Whether the model offers a documented `capability` filter value.
    pub fn has_capability(&self, capability: &str) -> bool {
        let c = &self.capabilities;
        match capability {
            "inpainting" => c.inpainting,
            "outpainting" => c.outpainting,
            "style_reference" => self.supports_guidance("ip_adapter"),
            "reference_image" => self.supports_guidance("reference_image"),
            "image_to_image" => {
                self.modality == Modality::Image && self.supports_guidance("init_image")
            }
            "controlnet" => ["pose", "depth", "canny", "lineart"]
                .iter()
                .any(|t| self.supports_guidance(t)),
            "text_to_image" => self.modality == Modality::Image && c.text_prompt,
            "text_to_video" => self.modality == Modality::Video && c.text_prompt && !c.lipsync,
            "image_to_video" => self.supports_guidance("first_frame"),
            "text_to_3d" => self.modality == Modality::ThreeD && c.text_prompt,
            "image_to_3d" => {
                self.modality == Modality::ThreeD && self.supports_guidance("init_image")
            }
            "lipsync" => c.lipsync,
            "generate_audio" => c.generate_audio,
            "text_to_speech" => c.text_to_speech,
            "sound_effect" => c.sound_effect,
            "music" => c.music,
            "negative_prompt" => c.negative_prompt,
            "seed" => c.seed,
            "tileability" => c.tileability,
            "textures" => c.textures,
            "pbr_materials" => c.pbr_materials,
            "quad_mesh" => c.quad_mesh,
            _ => false,
        }
    }

    /// Default duration for video and audio runs.
    pub fn default_duration(&self) -> Option<f64> {
        let c = &self.capabilities;
        if let Some(d) = c.duration_seconds.as_ref().and_then(|d| d.first()) {
            return Some(f64::from(*d));
        }
        match (c.duration_seconds_min, c.duration_seconds_max) {
            (Some(min), Some(max)) => Some((min.max(5.0)).min(max)),
            _ => None,
        }
    }
}

/// Values the `capability` filter of list models accepts.
pub const CAPABILITY_FILTERS: &[&str] = &[
    "inpainting",
    "outpainting",
    "style_reference",
    "reference_image",
    "image_to_image",
    "controlnet",
    "text_to_image",
    "text_to_video",
    "image_to_video",
    "text_to_3d",
    "image_to_3d",
    "lipsync",
    "generate_audio",
    "text_to_speech",
    "sound_effect",
    "music",
    "negative_prompt",
    "seed",
    "tileability",
    "textures",
    "pbr_materials",
    "quad_mesh",
];

/// The `Modality` enum of models.py.
pub const MODALITIES: &[&str] = &[
    "text", "image", "audio", "video", "three_d", "playable", "world",
];

const fn model_id(n: u128) -> ModelId {
    ModelId(Uuid::from_u128(
        0xb000_0000_0000_4000_8000_0000_0000_0000 | n,
    ))
}

const fn workflow_id(n: u128) -> WorkflowId {
    WorkflowId(Uuid::from_u128(
        0xc000_0000_0000_4000_8000_0000_0000_0000 | n,
    ))
}

fn image_caps(guidance: Vec<&'static str>) -> Capabilities {
    Capabilities {
        session_modes: Some(vec!["create", "prompt_edit_image"]),
        text_prompt: true,
        max_prompt_chars: Some(10_000),
        seed: true,
        guidance_file_types: Some(guidance),
        ..Capabilities::default()
    }
}

/// Every model, base models first, then custom styles.
pub fn models() -> &'static [ModelDef] {
    static MODELS: std::sync::OnceLock<Vec<ModelDef>> = std::sync::OnceLock::new();
    MODELS.get_or_init(build_models)
}

fn build_models() -> Vec<ModelDef> {
    vec![
        ModelDef {
            key: "flux-2-pro",
            id: model_id(1),
            name: "FLUX.2 Pro",
            modality: Modality::Image,
            base_model_id: "flux_2_pro",
            base_model_name: "FLUX.2 [pro]",
            description: "High-fidelity text-to-image with strong prompt adherence; takes reference images and a style reference.",
            inference_timing: "5-15s",
            prompt_format: Some(
                "Natural language. Describe subject, setting, style and lighting in one or two sentences.",
            ),
            capabilities: image_caps(vec!["reference_image", "ip_adapter", "init_image"]),
            price: PriceRule::PerImageMegapixel(1.0),
            default_size: Some((1024, 1024)),
            max_side: 2048,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "flux-1-fill",
            id: model_id(2),
            name: "FLUX.1 Fill",
            modality: Modality::Image,
            base_model_id: "flux_1_fill_pro",
            base_model_name: "FLUX.1 Fill [pro]",
            description: "Inpainting and outpainting: repaints the masked area of an init image to match the prompt.",
            inference_timing: "8-20s",
            prompt_format: Some("Describe only what should appear inside the mask."),
            capabilities: Capabilities {
                text_prompt_required: true,
                inpainting: true,
                outpainting: true,
                ..image_caps(vec!["init_image"])
            },
            price: PriceRule::PerImageMegapixel(1.5),
            default_size: Some((1024, 1024)),
            max_side: 2048,
            required_guidance: &["init_image"],
            custom: false,
        },
        ModelDef {
            key: "sdxl",
            id: model_id(3),
            name: "Stable Diffusion XL",
            modality: Modality::Image,
            base_model_id: "sdxl",
            base_model_name: "Stable Diffusion XL 1.0",
            description: "Versatile diffusion model with ControlNet guidance (pose, depth, canny, lineart), style reference and tileable textures.",
            inference_timing: "4-10s",
            prompt_format: Some(
                "Comma-separated tags work best: subject, style, medium, lighting. Use negative_prompt for what to avoid.",
            ),
            capabilities: Capabilities {
                negative_prompt: true,
                tileability: true,
                inpainting: true,
                ..image_caps(vec![
                    "init_image",
                    "ip_adapter",
                    "pose",
                    "depth",
                    "canny",
                    "lineart",
                    "scribble",
                ])
            },
            price: PriceRule::PerImageMegapixel(0.5),
            default_size: Some((1024, 1024)),
            max_side: 2048,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "gpt-image-1",
            id: model_id(4),
            name: "GPT Image 1",
            modality: Modality::Image,
            base_model_id: "gpt_image_1",
            base_model_name: "GPT Image 1",
            description: "Instruction-following image generation and editing; honours the quality setting.",
            inference_timing: "20-60s",
            prompt_format: Some("Full sentences; say what to change when editing an init image."),
            capabilities: Capabilities {
                seed: false,
                max_prompt_chars: Some(32_000),
                ..image_caps(vec!["init_image", "reference_image"])
            },
            price: PriceRule::PerImageMegapixel(2.0),
            default_size: Some((1024, 1024)),
            max_side: 1536,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "kling-v3-pro",
            id: model_id(5),
            name: "Kling v3 Pro",
            modality: Modality::Video,
            base_model_id: "kling_v3_pro",
            base_model_name: "Kling 3.0 Pro",
            description: "Cinematic text-to-video and image-to-video with first and last frame control.",
            inference_timing: "60-180s",
            prompt_format: Some("Describe the shot: subject, action, camera movement, mood."),
            capabilities: Capabilities {
                session_modes: Some(vec!["create_video"]),
                text_prompt: true,
                max_prompt_chars: Some(2_500),
                negative_prompt: true,
                seed: true,
                guidance_file_types: Some(vec!["first_frame", "last_frame"]),
                duration_seconds: Some(vec![5, 10]),
                ..Capabilities::default()
            },
            price: PriceRule::PerVideoSecond {
                rate: 4.0,
                audio: 1.0,
            },
            default_size: Some((1280, 720)),
            max_side: 1920,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "veo-3",
            id: model_id(6),
            name: "Veo 3",
            modality: Modality::Video,
            base_model_id: "veo_3",
            base_model_name: "Veo 3",
            description: "Text-to-video with native generated audio (dialogue, ambience, effects).",
            inference_timing: "90-240s",
            prompt_format: Some(
                "Describe the scene, then quote any dialogue; audio cues in brackets.",
            ),
            capabilities: Capabilities {
                session_modes: Some(vec!["create_video"]),
                text_prompt: true,
                text_prompt_required: true,
                max_prompt_chars: Some(4_000),
                negative_prompt: true,
                seed: true,
                guidance_file_types: Some(vec!["first_frame"]),
                duration_seconds: Some(vec![4, 6, 8]),
                generate_audio: true,
                ..Capabilities::default()
            },
            price: PriceRule::PerVideoSecond {
                rate: 6.0,
                audio: 1.5,
            },
            default_size: Some((1920, 1080)),
            max_side: 1920,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "sync-lipsync-2",
            id: model_id(7),
            name: "Sync Lipsync 2",
            modality: Modality::Video,
            base_model_id: "sync_lipsync_2",
            base_model_name: "sync. lipsync-2",
            description: "Lip-syncs a video (or a still portrait) to an audio track.",
            inference_timing: "30-120s",
            prompt_format: None,
            capabilities: Capabilities {
                session_modes: Some(vec!["create_video"]),
                lipsync: true,
                guidance_file_types: Some(vec!["init_video", "init_audio", "first_frame"]),
                duration_seconds: Some(vec![5, 10, 15]),
                ..Capabilities::default()
            },
            price: PriceRule::PerVideoSecond {
                rate: 2.0,
                audio: 1.0,
            },
            default_size: Some((1280, 720)),
            max_side: 1920,
            required_guidance: &["init_audio"],
            custom: false,
        },
        ModelDef {
            key: "meshy-v5",
            id: model_id(8),
            name: "Meshy 5",
            modality: Modality::ThreeD,
            base_model_id: "meshy_v5",
            base_model_name: "Meshy-5",
            description: "Text-to-3D and image-to-3D game-ready meshes with optional textures, PBR materials and quad topology.",
            inference_timing: "60-180s",
            prompt_format: Some("Name one object and its material; avoid scenes."),
            capabilities: Capabilities {
                session_modes: Some(vec!["create_3_d"]),
                text_prompt: true,
                max_prompt_chars: Some(600),
                seed: true,
                guidance_file_types: Some(vec!["init_image"]),
                textures: true,
                quad_mesh: true,
                pbr_materials: true,
                ..Capabilities::default()
            },
            price: PriceRule::Mesh { base: 20.0 },
            default_size: None,
            max_side: 0,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "tripo-v2-5",
            id: model_id(9),
            name: "Tripo 2.5",
            modality: Modality::ThreeD,
            base_model_id: "tripo_v2_5",
            base_model_name: "Tripo v2.5",
            description: "Image-to-3D: turns one concept image into a textured mesh.",
            inference_timing: "30-90s",
            prompt_format: None,
            capabilities: Capabilities {
                session_modes: Some(vec!["create_3_d"]),
                guidance_file_types: Some(vec!["init_image"]),
                textures: true,
                ..Capabilities::default()
            },
            price: PriceRule::Mesh { base: 15.0 },
            default_size: None,
            max_side: 0,
            required_guidance: &["init_image"],
            custom: false,
        },
        ModelDef {
            key: "elevenlabs-multilingual-v2",
            id: model_id(10),
            name: "ElevenLabs Multilingual v2",
            modality: Modality::Audio,
            base_model_id: "elevenlabs_multilingual_v2",
            base_model_name: "Eleven Multilingual v2",
            description: "Text to speech in 29 languages.",
            inference_timing: "2-10s",
            prompt_format: Some("The exact words to speak."),
            capabilities: Capabilities {
                session_modes: Some(vec!["create_speech"]),
                text_prompt: true,
                text_prompt_required: true,
                max_prompt_chars: Some(10_000),
                text_to_speech: true,
                ..Capabilities::default()
            },
            price: PriceRule::PerHundredChars(0.3),
            default_size: None,
            max_side: 0,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "elevenlabs-sound-effects",
            id: model_id(11),
            name: "ElevenLabs Sound Effects",
            modality: Modality::Audio,
            base_model_id: "elevenlabs_sound_effects",
            base_model_name: "Eleven Sound Effects",
            description: "Sound effects from a description, up to 22 seconds.",
            inference_timing: "3-10s",
            prompt_format: Some("Describe the sound and its setting."),
            capabilities: Capabilities {
                session_modes: Some(vec!["create_sound_effect"]),
                text_prompt: true,
                text_prompt_required: true,
                max_prompt_chars: Some(450),
                sound_effect: true,
                duration_seconds_min: Some(0.5),
                duration_seconds_max: Some(22.0),
                ..Capabilities::default()
            },
            price: PriceRule::PerAudioSecond(0.2),
            default_size: None,
            max_side: 0,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "lyria-2",
            id: model_id(12),
            name: "Lyria 2",
            modality: Modality::Audio,
            base_model_id: "lyria_2",
            base_model_name: "Lyria 2",
            description: "Instrumental music from a description, 10 to 120 seconds.",
            inference_timing: "20-60s",
            prompt_format: Some("Genre, mood, instruments and tempo."),
            capabilities: Capabilities {
                session_modes: Some(vec!["create_music"]),
                text_prompt: true,
                text_prompt_required: true,
                max_prompt_chars: Some(2_000),
                negative_prompt: true,
                seed: true,
                music: true,
                duration_seconds_min: Some(10.0),
                duration_seconds_max: Some(120.0),
                ..Capabilities::default()
            },
            price: PriceRule::PerAudioSecond(0.1),
            default_size: None,
            max_side: 0,
            required_guidance: &[],
            custom: false,
        },
        ModelDef {
            key: "acme-product-style",
            id: model_id(0x101),
            name: "Acme Product Style",
            modality: Modality::Image,
            base_model_id: "flux_dev",
            base_model_name: "FLUX.1 [dev]",
            description: "Custom style trained on Acme's catalogue photography: clean studio light, soft shadows.",
            inference_timing: "5-15s",
            prompt_format: Some("Name the product; the style supplies lighting and backdrop."),
            capabilities: image_caps(vec!["reference_image", "init_image"]),
            price: PriceRule::PerImageMegapixel(0.8),
            default_size: Some((1024, 1024)),
            max_side: 2048,
            required_guidance: &[],
            custom: true,
        },
    ]
}

pub fn custom_model(key: &str) -> Option<&'static ModelDef> {
    models().iter().find(|m| m.custom && m.key == key)
}

/// The models a workspace sees: every base model, plus the custom styles it names.
pub fn models_for<'a>(custom_keys: &'a [String]) -> impl Iterator<Item = &'static ModelDef> + 'a {
    models()
        .iter()
        .filter(move |m| !m.custom || custom_keys.iter().any(|k| k == m.key))
}

/// One workflow input; `kind` is the wire `type`.
#[derive(Clone, Debug)]
pub struct WorkflowInputDef {
    pub name: &'static str,
    pub kind: &'static str,
    pub required: bool,
    pub description: &'static str,
    pub display_name: &'static str,
    pub default: Value,
    pub value_schema: Value,
}

#[derive(Clone, Debug)]
pub struct WorkflowOutputDef {
    pub name: &'static str,
    pub kind: &'static str,
    pub description: &'static str,
    pub display_name: &'static str,
    pub value_schema: Value,
    /// What each produced file is.
    pub media: OutputMedia,
}

/// What a generated file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMedia {
    Png,
    Mp4,
    Wav,
    Glb,
}

/// How a workflow prices and shapes its run.
#[derive(Clone, Copy, Debug)]
pub enum WorkflowKind {
    ProductShot,
    CharacterTurnaround,
    ImageTo3d,
    PromoVideo,
    Voiceover,
}

#[derive(Clone, Debug)]
pub struct WorkflowDef {
    pub id: WorkflowId,
    pub kind: WorkflowKind,
    pub name: &'static str,
    pub description: &'static str,
    pub modality: Modality,
    pub created_at: &'static str,
    pub published_at: &'static str,
    pub inputs: Vec<WorkflowInputDef>,
    pub outputs: Vec<WorkflowOutputDef>,
    pub steps: &'static [&'static str],
}

impl WorkflowDef {
    pub fn output_json(o: &WorkflowOutputDef) -> Value {
        json!({
            "name": o.name,
            "type": o.kind,
            "value_schema": o.value_schema,
            "description": o.description,
            "display_name": o.display_name,
        })
    }

    pub fn summary(&self) -> Value {
        json!({
            "workflow_id": self.id,
            "name": self.name,
            "description": self.description,
            "modality": self.modality.as_str(),
            "created_at": self.created_at,
            "published_at": self.published_at,
            "inputs": self.inputs.iter().map(|i| json!({
                "name": i.name,
                "type": i.kind,
                "value_schema": i.value_schema,
                "required": i.required,
                "description": i.description,
                "display_name": i.display_name,
                "default": i.default,
            })).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(Self::output_json).collect::<Vec<_>>(),
        })
    }
}

fn file_input(
    name: &'static str,
    display_name: &'static str,
    required: bool,
    description: &'static str,
    media: &'static str,
) -> WorkflowInputDef {
    WorkflowInputDef {
        name,
        kind: "file",
        required,
        description,
        display_name,
        default: Value::Null,
        value_schema: json!({
            "type": "string",
            "format": "uuid",
            "description": "file_id of an uploaded file or of an earlier output",
            "contentMediaType": media,
        }),
    }
}

fn prompt_input(
    name: &'static str,
    display_name: &'static str,
    description: &'static str,
    max_len: u32,
) -> WorkflowInputDef {
    WorkflowInputDef {
        name,
        kind: "prompt",
        required: true,
        description,
        display_name,
        default: Value::Null,
        value_schema: json!({"type": "string", "minLength": 1, "maxLength": max_len}),
    }
}

fn file_output(
    name: &'static str,
    display_name: &'static str,
    description: &'static str,
    media: OutputMedia,
) -> WorkflowOutputDef {
    let mime = match media {
        OutputMedia::Png => "image/png",
        OutputMedia::Mp4 => "video/mp4",
        OutputMedia::Wav => "audio/wav",
        OutputMedia::Glb => "model/gltf-binary",
    };
    WorkflowOutputDef {
        name,
        kind: "file",
        description,
        display_name,
        value_schema: json!({"type": "string", "format": "uuid", "contentMediaType": mime}),
        media,
    }
}

pub fn workflows() -> &'static [WorkflowDef] {
    static WORKFLOWS: std::sync::OnceLock<Vec<WorkflowDef>> = std::sync::OnceLock::new();
    WORKFLOWS.get_or_init(build_workflows)
}

fn build_workflows() -> Vec<WorkflowDef> {
    vec![
        WorkflowDef {
            id: workflow_id(1),
            kind: WorkflowKind::ProductShot,
            name: "Product shot",
            description: "Places a product photo into a generated scene: cuts the product out, generates the scene from a prompt, relights and composites, then upscales.",
            modality: Modality::Image,
            created_at: "2025-09-02T10:00:00Z",
            published_at: "2025-09-03T09:30:00Z",
            inputs: vec![
                file_input(
                    "product_image",
                    "Product image",
                    true,
                    "Photo of the product (PNG, JPEG or WebP); a plain background works best.",
                    "image/*",
                ),
                prompt_input(
                    "scene_prompt",
                    "Scene",
                    "The scene to place the product in, e.g. 'on a marble counter, morning light'.",
                    2_000,
                ),
                WorkflowInputDef {
                    name: "num_variations",
                    kind: "number",
                    required: false,
                    description: "How many shots to generate.",
                    display_name: "Variations",
                    default: json!(2),
                    value_schema: json!({"type": "integer", "minimum": 1, "maximum": 4}),
                },
                WorkflowInputDef {
                    name: "aspect_ratio",
                    kind: "string",
                    required: false,
                    description: "Shape of the shots.",
                    display_name: "Aspect ratio",
                    default: json!("1:1"),
                    value_schema: json!({"type": "string", "enum": ["1:1", "4:5", "16:9"]}),
                },
                WorkflowInputDef {
                    name: "remove_background",
                    kind: "boolean",
                    required: false,
                    description: "Cut the product out of its photo before compositing.",
                    display_name: "Remove background",
                    default: json!(true),
                    value_schema: json!({"type": "boolean"}),
                },
            ],
            outputs: vec![file_output(
                "shots",
                "Shots",
                "The finished product shots, one per variation.",
                OutputMedia::Png,
            )],
            steps: &[
                "Remove background",
                "Generate scene",
                "Relight and composite",
                "Upscale",
            ],
        },
        WorkflowDef {
            id: workflow_id(2),
            kind: WorkflowKind::CharacterTurnaround,
            name: "Character turnaround",
            description: "Draws one character from several angles on a neutral background, for modelling reference.",
            modality: Modality::Image,
            created_at: "2025-07-14T08:00:00Z",
            published_at: "2025-07-15T12:00:00Z",
            inputs: vec![
                prompt_input(
                    "character_prompt",
                    "Character",
                    "Who the character is: look, outfit, proportions.",
                    2_000,
                ),
                file_input(
                    "style_reference",
                    "Style reference",
                    false,
                    "An image whose style the views should follow.",
                    "image/*",
                ),
                WorkflowInputDef {
                    name: "views",
                    kind: "number",
                    required: false,
                    description: "Number of angles.",
                    display_name: "Views",
                    default: json!(4),
                    value_schema: json!({"type": "integer", "minimum": 2, "maximum": 8}),
                },
            ],
            outputs: vec![file_output(
                "views",
                "Views",
                "One image per angle.",
                OutputMedia::Png,
            )],
            steps: &["Design sheet", "Render views"],
        },
        WorkflowDef {
            id: workflow_id(3),
            kind: WorkflowKind::ImageTo3d,
            name: "Image to 3D asset",
            description: "Turns a concept image into a game-ready GLB with a preview render.",
            modality: Modality::ThreeD,
            created_at: "2025-10-01T08:00:00Z",
            published_at: "2025-10-02T08:00:00Z",
            inputs: vec![
                file_input(
                    "concept_image",
                    "Concept image",
                    true,
                    "A clean view of a single object.",
                    "image/*",
                ),
                WorkflowInputDef {
                    name: "textured",
                    kind: "boolean",
                    required: false,
                    description: "Generate PBR textures.",
                    display_name: "Textured",
                    default: json!(true),
                    value_schema: json!({"type": "boolean"}),
                },
            ],
            outputs: vec![
                file_output(
                    "model",
                    "Model",
                    "The mesh as binary glTF.",
                    OutputMedia::Glb,
                ),
                file_output(
                    "preview",
                    "Preview",
                    "A render of the mesh.",
                    OutputMedia::Png,
                ),
            ],
            steps: &[
                "Segment object",
                "Generate mesh",
                "Texture",
                "Render preview",
            ],
        },
        WorkflowDef {
            id: workflow_id(4),
            kind: WorkflowKind::PromoVideo,
            name: "Promo video",
            description: "Animates a product image into a short promotional clip following a script.",
            modality: Modality::Video,
            created_at: "2025-11-10T08:00:00Z",
            published_at: "2025-11-11T08:00:00Z",
            inputs: vec![
                file_input(
                    "product_image",
                    "Product image",
                    true,
                    "The product to feature.",
                    "image/*",
                ),
                prompt_input("script", "Script", "What happens in the clip.", 2_500),
                WorkflowInputDef {
                    name: "duration",
                    kind: "number",
                    required: false,
                    description: "Clip length in seconds.",
                    display_name: "Duration",
                    default: json!(5),
                    value_schema: json!({"type": "integer", "enum": [5, 10]}),
                },
            ],
            outputs: vec![file_output(
                "video",
                "Video",
                "The clip as MP4.",
                OutputMedia::Mp4,
            )],
            steps: &["Storyboard", "Animate", "Encode"],
        },
        WorkflowDef {
            id: workflow_id(5),
            kind: WorkflowKind::Voiceover,
            name: "Voiceover",
            description: "Reads a script aloud in one of three voices.",
            modality: Modality::Audio,
            created_at: "2025-06-20T08:00:00Z",
            published_at: "2025-06-21T08:00:00Z",
            inputs: vec![
                prompt_input("script", "Script", "The words to speak.", 5_000),
                WorkflowInputDef {
                    name: "voice",
                    kind: "string",
                    required: false,
                    description: "Voice to use.",
                    display_name: "Voice",
                    default: json!("narrator"),
                    value_schema: json!({"type": "string", "enum": ["narrator", "warm", "energetic"]}),
                },
            ],
            outputs: vec![file_output(
                "audio",
                "Audio",
                "The narration as WAV.",
                OutputMedia::Wav,
            )],
            steps: &["Synthesize speech", "Master"],
        },
    ]
}

pub fn workflow(id: WorkflowId) -> Option<&'static WorkflowDef> {
    workflows().iter().find(|w| w.id == id)
}

/// Whether a workspace can see a model.
pub fn model_in_workspace(id: ModelId, custom_keys: &[String]) -> Option<&'static ModelDef> {
    models_for(custom_keys).find(|m| m.id == id)
}

/// Workflows are the same in every workspace.
pub fn workflow_in_workspace(id: WorkflowId, _ws: WorkspaceId) -> Option<&'static WorkflowDef> {
    workflow(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_capability_has_a_model() {
        for cap in CAPABILITY_FILTERS {
            assert!(
                models().iter().any(|m| m.has_capability(cap)),
                "no model offers {cap}"
            );
        }
        for modality in [
            Modality::Image,
            Modality::Video,
            Modality::ThreeD,
            Modality::Audio,
        ] {
            assert!(models().iter().any(|m| m.modality == modality));
        }
    }

    #[test]
    fn ids_are_unique() {
        let mut ids: Vec<_> = models().iter().map(|m| m.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), models().len());
    }
}
