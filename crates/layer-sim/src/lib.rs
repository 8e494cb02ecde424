//! A faithful simulator of Layer's v1 REST API and its login (an Auth0-shaped OIDC provider),
//! for tests and demos. Start one in-process with [`start`]:
//!
//! ```no_run
//! # use secrecy::ExposeSecret;
//! # async fn demo() -> Result<(), layer_sim::SimError> {
//! let sim = layer_sim::start(layer_sim::SimConfig::for_tests()).await?;
//! println!("API at {}", sim.api_url());
//! let pat = sim.fixtures().active_pat("alice").map(|s| s.expose_secret().to_owned());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See the crate README for the endpoints, fixtures, failure triggers and pricing.

mod admin;
mod api;
mod auth;
mod catalogue;
mod config;
mod conn;
mod error;
mod faults;
mod files_check;
pub mod fixtures;
mod idempotency;
mod idp;
mod ids;
mod limits;
mod outputs;
mod pricing;
mod problem;
mod request_ctx;
mod schemas;
mod secret;
mod server;
mod state;
mod storage;
mod triggers;
mod validation;

pub use config::{FixtureSource, MAX_SPAN, SimConfig};
pub use error::SimError;
pub use faults::{FaultKind, FaultSpec, When};
pub use fixtures::Fixtures;
pub use server::{RunningSim, start};

/// Stable ids of the built-in catalogue, for tests that name a model or workflow.
pub mod catalogue_ids {
    use uuid::Uuid;

    /// FLUX.2 Pro (image; reference image and style reference).
    pub const FLUX_2_PRO: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0001);
    /// FLUX.1 Fill (image inpainting; needs an `init_image`).
    pub const FLUX_1_FILL: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0002);
    /// Stable Diffusion XL (image; ControlNet guidance, tileable).
    pub const SDXL: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0003);
    /// GPT Image 1 (image; quality levels).
    pub const GPT_IMAGE_1: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0004);
    /// Kling v3 Pro (video, 5 or 10 s).
    pub const KLING_V3_PRO: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0005);
    /// Veo 3 (video with generated audio, 4/6/8 s).
    pub const VEO_3: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0006);
    /// Sync Lipsync 2 (video lipsync; needs `init_audio`).
    pub const SYNC_LIPSYNC_2: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0007);
    /// Meshy 5 (3D: text to 3D and image to 3D).
    pub const MESHY_5: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0008);
    /// Tripo 2.5 (3D: image to 3D only).
    pub const TRIPO_2_5: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0009);
    /// ElevenLabs Multilingual v2 (audio: text to speech).
    pub const ELEVENLABS_TTS: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_000a);
    /// ElevenLabs Sound Effects (audio, 0.5-22 s).
    pub const ELEVENLABS_SFX: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_000b);
    /// Lyria 2 (audio: music, 10-120 s).
    pub const LYRIA_2: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_000c);
    /// Acme Product Style (custom style, only in the `acme-studio` workspace).
    pub const ACME_PRODUCT_STYLE: Uuid = Uuid::from_u128(0xb000_0000_0000_4000_8000_0000_0000_0101);

    /// Product shot workflow.
    pub const PRODUCT_SHOT: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0001);
    /// Character turnaround workflow.
    pub const CHARACTER_TURNAROUND: Uuid =
        Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0002);
    /// Image to 3D asset workflow.
    pub const IMAGE_TO_3D: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0003);
    /// Promo video workflow.
    pub const PROMO_VIDEO: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0004);
    /// Voiceover workflow.
    pub const VOICEOVER: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0005);
}

/// Prompt words that steer runs (see the README): a failure code fails the run with that
/// code; [`triggers::HOLD`] keeps it unfinished until `/_sim/runs/{id}/finish` or a cancel.
pub mod prompt_triggers {
    pub use crate::triggers::{HOLD, INFERENCE_TRIGGERS};
}
