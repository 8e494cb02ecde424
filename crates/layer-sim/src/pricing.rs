//! What runs cost, in Creative Units. The README's pricing table describes these rules.

use crate::catalogue::{Modality, ModelDef, PriceRule, WorkflowDef, WorkflowKind};

/// The parameters pricing and output generation depend on, after normalization.
#[derive(Clone, Debug)]
pub struct PricedInference {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub batch_size: u32,
    pub duration_seconds: Option<f64>,
    pub prompt_chars: usize,
    pub quality: Option<String>,
    pub generate_audio: bool,
    pub remove_background: bool,
    pub vectorize: bool,
    pub upscale_ratio: Option<f64>,
    pub include_textures: bool,
    pub pbr_materials: bool,
    pub quad_mesh: bool,
    pub detailed_geometry: bool,
    pub texture_8k: bool,
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Megapixels, rounded up to a quarter, at least a quarter.
fn billed_megapixels(width: u32, height: u32) -> f64 {
    let mp = f64::from(width) * f64::from(height) / 1_048_576.0;
    ((mp * 4.0).ceil() / 4.0).max(0.25)
}

pub fn estimate_inference(model: &ModelDef, p: &PricedInference) -> f64 {
    let batch = f64::from(p.batch_size);
    let price = match model.price {
        PriceRule::PerImageMegapixel(rate) => {
            let (w, h) = (p.width.unwrap_or(1024), p.height.unwrap_or(1024));
            let quality = match p.quality.as_deref() {
                Some("low") => 0.5,
                Some("high") => 2.0,
                _ => 1.0,
            };
            let mut per_image = rate * billed_megapixels(w, h) * quality;
            if p.remove_background {
                per_image += 0.25;
            }
            if p.vectorize {
                per_image += 0.5;
            }
            if let Some(r) = p.upscale_ratio.filter(|r| *r > 1.0) {
                per_image += 0.5 * r * r;
            }
            per_image * batch
        }
        PriceRule::PerVideoSecond { rate, audio } => {
            let seconds = p.duration_seconds.unwrap_or(5.0);
            let multiplier = if p.generate_audio { audio } else { 1.0 };
            rate * seconds * multiplier * batch
        }
        PriceRule::Mesh { base } => {
            let mut per_asset = base;
            if p.include_textures {
                per_asset += 5.0;
            }
            if p.pbr_materials {
                per_asset += 5.0;
            }
            if p.quad_mesh {
                per_asset += 2.0;
            }
            if p.detailed_geometry {
                per_asset += 10.0;
            }
            if p.texture_8k {
                per_asset += 5.0;
            }
            per_asset * batch
        }
        PriceRule::PerHundredChars(rate) => {
            let hundreds = p.prompt_chars.div_ceil(100).max(1) as f64;
            rate * hundreds * batch
        }
        PriceRule::PerAudioSecond(rate) => rate * p.duration_seconds.unwrap_or(10.0) * batch,
    };
    round2(price)
}

/// What a completed inference charges: the estimate for images and audio; 90 % of it for
/// video and 3D, whose providers bill the actual work (never more than the estimate).
pub fn actual_inference(model: &ModelDef, estimate: f64) -> f64 {
    match model.modality {
        Modality::Image | Modality::Audio => estimate,
        Modality::Video | Modality::ThreeD => round2(estimate * 0.9),
    }
}

/// What a completed workflow run charges: 95 % of the estimate (steps that turn out cheaper).
pub fn actual_workflow(estimate: f64) -> f64 {
    round2(estimate * 0.95)
}

/// Resolved workflow inputs that pricing depends on.
#[derive(Clone, Debug)]
pub struct WorkflowPlan {
    pub estimate: f64,
    /// Files per output, in the order of `WorkflowDef::outputs`.
    pub output_counts: Vec<u32>,
    /// Seconds for video/audio outputs.
    pub duration_seconds: Option<f64>,
    /// Output image size.
    pub image_size: (u32, u32),
}

pub fn plan_workflow(
    def: &WorkflowDef,
    inputs: &serde_json::Map<String, serde_json::Value>,
) -> WorkflowPlan {
    let num = |name: &str, default: f64| {
        inputs
            .get(name)
            .and_then(crate::validation::as_float)
            .unwrap_or(default)
    };
    let flag = |name: &str, default: bool| {
        inputs
            .get(name)
            .and_then(crate::validation::as_bool)
            .unwrap_or(default)
    };
    let text_len = |name: &str| {
        inputs
            .get(name)
            .and_then(|v| v.as_str())
            .map_or(0, |s| s.chars().count())
    };
    match def.kind {
        WorkflowKind::ProductShot => {
            let n = num("num_variations", 2.0).max(1.0);
            let bg = if flag("remove_background", true) {
                1.0
            } else {
                0.0
            };
            let size = match inputs.get("aspect_ratio").and_then(|v| v.as_str()) {
                Some("4:5") => (1024, 1280),
                Some("16:9") => (1344, 768),
                _ => (1024, 1024),
            };
            WorkflowPlan {
                estimate: round2(6.0 * n + bg),
                output_counts: vec![n as u32],
                duration_seconds: None,
                image_size: size,
            }
        }
        WorkflowKind::CharacterTurnaround => {
            let views = num("views", 4.0).max(1.0);
            WorkflowPlan {
                estimate: round2(1.5 * views),
                output_counts: vec![views as u32],
                duration_seconds: None,
                image_size: (768, 1024),
            }
        }
        WorkflowKind::ImageTo3d => WorkflowPlan {
            estimate: if flag("textured", true) { 30.0 } else { 25.0 },
            output_counts: vec![1, 1],
            duration_seconds: None,
            image_size: (512, 512),
        },
        WorkflowKind::PromoVideo => {
            let seconds = num("duration", 5.0);
            WorkflowPlan {
                estimate: round2(4.0 * seconds),
                output_counts: vec![1],
                duration_seconds: Some(seconds),
                image_size: (1280, 720),
            }
        }
        WorkflowKind::Voiceover => {
            let chars = text_len("script");
            WorkflowPlan {
                estimate: round2(0.3 * chars.div_ceil(100).max(1) as f64),
                output_counts: vec![1],
                // About 15 characters a second of speech.
                duration_seconds: Some(((chars as f64) / 15.0).clamp(1.0, 600.0)),
                image_size: (0, 0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::models;

    fn base() -> PricedInference {
        PricedInference {
            width: Some(1024),
            height: Some(1024),
            batch_size: 4,
            duration_seconds: None,
            prompt_chars: 10,
            quality: None,
            generate_audio: false,
            remove_background: false,
            vectorize: false,
            upscale_ratio: None,
            include_textures: false,
            pbr_materials: false,
            quad_mesh: false,
            detailed_geometry: false,
            texture_8k: false,
        }
    }

    #[test]
    fn image_price_scales_with_batch_and_resolution() {
        let flux = &models()[0];
        assert_eq!(estimate_inference(flux, &base()), 4.0);
        let big = PricedInference {
            width: Some(2048),
            height: Some(2048),
            batch_size: 1,
            ..base()
        };
        assert_eq!(estimate_inference(flux, &big), 4.0);
    }

    #[test]
    fn actual_never_exceeds_estimate() {
        for m in models() {
            let e = estimate_inference(m, &base());
            assert!(actual_inference(m, e) <= e);
        }
    }
}
