//! Inferences (forge runs): estimate, execute, poll, cancel.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::{
    JsonBytes, RawPath, cancel_run, check_balance, check_rate_limit, create_once, fingerprint,
    idempotency_key, member_workspace, new_run, ok_json, path_uuids, price_estimate, workspace_id,
};
use crate::auth::Caller;
use crate::catalogue::{Modality, ModelDef, model_in_workspace};
use crate::files_check::{Media, check_file};
use crate::ids::{FileId, ModelId, RunId, WorkspaceId, derive_uuid};
use crate::outputs::Generated;
use crate::pricing::{PricedInference, estimate_inference};
use crate::problem::{ApiError, ValidationItem, loc};
use crate::state::{Failure, Inner, PlannedOutput, Run, RunKind, Sim, rfc3339};
use crate::validation::{body_object, finish, get, get_bool, get_float, get_int, get_str};
use crate::{schemas, triggers};

/// A validated request, resolved against its model.
struct Resolved {
    model: &'static ModelDef,
    priced: PricedInference,
    estimate: f64,
    normalized: Value,
    seed: Option<u64>,
    failure: Option<(Failure, f64)>,
    held: bool,
}

/// The file a `file_id` field names, when it holds a UUID (validation reported it otherwise).
fn file_ref(value: &Value) -> Option<FileId> {
    value
        .as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .map(FileId)
}

fn item(parts: &[&str], kind: &str, msg: impl Into<String>, input: Value) -> ValidationItem {
    ValidationItem::new(loc(parts), kind, msg).input(input)
}

/// Resolves model-specific rules: sizes, durations, guidance kinds and files, the mask.
fn resolve(
    inner: &Inner,
    ws_id: WorkspaceId,
    custom: &[String],
    body: &Map<String, Value>,
) -> Result<Resolved, ApiError> {
    let model_id = get_str(body, "model_id")
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| ApiError::Internal("model_id passed validation but is not a UUID".into()))?;
    let model = model_in_workspace(ModelId(model_id), custom).ok_or(ApiError::ModelNotFound)?;
    let caps = &model.capabilities;
    let mut errors = Vec::new();

    let prompt = get_str(body, "prompt").unwrap_or("");
    if caps.text_prompt_required && prompt.trim().is_empty() {
        errors.push(item(
            &["body", "prompt"],
            "missing",
            format!("Field required: {} needs a prompt", model.name),
            json!(prompt),
        ));
    }
    if let Some(max) = caps.max_prompt_chars
        && prompt.chars().count() > max as usize
    {
        errors.push(
            item(
                &["body", "prompt"],
                "string_too_long",
                format!(
                    "String should have at most {max} characters for {}",
                    model.name
                ),
                json!(prompt.chars().take(64).collect::<String>()),
            )
            .ctx(json!({"max_length": max})),
        );
    }

    let (mut width, mut height) = (None, None);
    if let Some((dw, dh)) = model.default_size {
        let w = get_int(body, "width").unwrap_or(i64::from(dw));
        let h = get_int(body, "height").unwrap_or(i64::from(dh));
        for (name, v) in [("width", w), ("height", h)] {
            if v > i64::from(model.max_side) {
                errors.push(
                    item(
                        &["body", name],
                        "less_than_equal",
                        format!(
                            "Input should be less than or equal to {} for {}",
                            model.max_side, model.name
                        ),
                        json!(v),
                    )
                    .ctx(json!({"le": model.max_side})),
                );
            }
        }
        // Providers work in multiples of 8 pixels, at least 64.
        let norm = |v: i64| ((v.clamp(64, i64::from(model.max_side)) / 8) * 8) as u32;
        width = Some(norm(w));
        height = Some(norm(h));
    }

    let mut duration = None;
    if matches!(model.modality, Modality::Video | Modality::Audio) && !caps.text_to_speech {
        let requested = get_float(body, "duration_seconds");
        if let Some(allowed) = &caps.duration_seconds {
            if let Some(d) = requested
                && !allowed.iter().any(|a| (f64::from(*a) - d).abs() < 1e-9)
            {
                let list: Vec<String> = allowed.iter().map(u32::to_string).collect();
                errors.push(item(
                    &["body", "duration_seconds"],
                    "value_error",
                    format!(
                        "Value error, {} makes clips of {} seconds",
                        model.name,
                        list.join(", ")
                    ),
                    json!(d),
                ));
            }
        } else if let (Some(min), Some(max), Some(d)) = (
            caps.duration_seconds_min,
            caps.duration_seconds_max,
            requested,
        ) && !(min..=max).contains(&d)
        {
            errors.push(item(
                &["body", "duration_seconds"],
                "value_error",
                format!(
                    "Value error, {} makes clips between {min} and {max} seconds",
                    model.name
                ),
                json!(d),
            ));
        }
        duration = requested.or_else(|| model.default_duration());
    }

    let mut guidance_kinds = Vec::new();
    if let Some(Value::Array(files)) = get(body, "guidance_files") {
        for (i, g) in files.iter().enumerate() {
            let idx = i.to_string();
            let kind = g["type"].as_str().unwrap_or_default();
            guidance_kinds.push(kind.to_owned());
            if !model.supports_guidance(kind) {
                let supported = caps
                    .guidance_file_types
                    .clone()
                    .unwrap_or_default()
                    .join(", ");
                errors.push(item(
                    &["body", "guidance_files", &idx, "type"],
                    "value_error",
                    format!(
                        "Value error, {} does not take '{kind}' guidance; it takes: {}",
                        model.name,
                        if supported.is_empty() {
                            "none"
                        } else {
                            &supported
                        }
                    ),
                    json!(kind),
                ));
            }
            if let Some(id) = file_ref(&g["file_id"]) {
                let at = loc(&["body", "guidance_files", &idx, "file_id"]);
                check_file(inner, ws_id, id, Media::for_guidance(kind), at, &mut errors)?;
            }
        }
    }
    for required in model.required_guidance {
        if !guidance_kinds.iter().any(|k| k == required) {
            errors.push(item(
                &["body", "guidance_files"],
                "missing",
                format!(
                    "Field required: {} needs a '{required}' guidance file",
                    model.name
                ),
                json!(guidance_kinds),
            ));
        }
    }
    if let Some(mask) = get(body, "mask") {
        if !caps.inpainting {
            errors.push(item(
                &["body", "mask"],
                "value_error",
                format!(
                    "Value error, {} does not inpaint; pick a model with the inpainting capability",
                    model.name
                ),
                mask.clone(),
            ));
        }
        if let Some(id) = file_ref(&mask["file_id"]) {
            let at = loc(&["body", "mask", "file_id"]);
            check_file(inner, ws_id, id, Media::Image, at, &mut errors)?;
        }
    }
    finish(errors)?;

    let batch_size = get_int(body, "batch_size").unwrap_or(4).clamp(1, 16) as u32;
    let priced = PricedInference {
        width,
        height,
        batch_size,
        duration_seconds: duration,
        prompt_chars: prompt.chars().count(),
        quality: get_str(body, "quality").map(str::to_owned),
        generate_audio: caps.generate_audio && get_bool(body, "generate_audio").unwrap_or(false),
        remove_background: get_bool(body, "remove_background").unwrap_or(false),
        vectorize: get_bool(body, "vectorize").unwrap_or(false),
        upscale_ratio: get_float(body, "upscale_ratio"),
        include_textures: caps.textures && get_bool(body, "include_textures").unwrap_or(false),
        pbr_materials: caps.pbr_materials && get_bool(body, "pbr_materials").unwrap_or(false),
        quad_mesh: caps.quad_mesh && get_bool(body, "quad_mesh").unwrap_or(false),
        detailed_geometry: get_bool(body, "detailed_geometry").unwrap_or(false),
        texture_8k: get_str(body, "texture_resolution") == Some("RES_8K"),
    };
    let estimate = estimate_inference(model, &priced);
    let is_image = model.modality == Modality::Image;
    let is_video = model.modality == Modality::Video;
    let normalized = json!({
        "width": width,
        "height": height,
        "batch_size": batch_size,
        "num_inference_steps": if is_image { Some(get_int(body, "num_inference_steps").unwrap_or(28)) } else { None },
        "guidance_scale": if is_image { Some(get_float(body, "guidance_scale").unwrap_or(3.5)) } else { None },
        "duration_seconds": duration,
        "fps": if is_video { Some(get_int(body, "fps").unwrap_or(24)) } else { None },
    });
    let seed = get_int(body, "seed").filter(|s| *s >= 0).map(|s| s as u64);
    Ok(Resolved {
        model,
        priced,
        estimate,
        normalized,
        seed,
        failure: triggers::inference_failure(prompt),
        held: prompt.contains(triggers::HOLD),
    })
}

fn planned_outputs(r: &Resolved, run_seed: u64) -> Vec<PlannedOutput> {
    let p = &r.priced;
    (0..p.batch_size)
        .map(|i| {
            let seed = run_seed.wrapping_add(u64::from(i));
            let ms = |d: Option<f64>| (d.unwrap_or(5.0) * 1000.0).round() as u32;
            match r.model.modality {
                Modality::Image => PlannedOutput {
                    media: Generated::Png {
                        width: p.width.unwrap_or(1024),
                        height: p.height.unwrap_or(1024),
                        seed,
                    },
                    width: p.width,
                    height: p.height,
                    duration_seconds: None,
                },
                Modality::Video => PlannedOutput {
                    media: Generated::Mp4 {
                        duration_ms: ms(p.duration_seconds),
                        seed,
                    },
                    width: p.width,
                    height: p.height,
                    duration_seconds: p.duration_seconds,
                },
                Modality::ThreeD => PlannedOutput {
                    media: Generated::Glb { seed },
                    width: None,
                    height: None,
                    duration_seconds: None,
                },
                Modality::Audio => {
                    let d = p
                        .duration_seconds
                        .unwrap_or_else(|| ((p.prompt_chars as f64) / 15.0).clamp(1.0, 600.0));
                    PlannedOutput {
                        media: Generated::Wav {
                            duration_ms: ms(Some(d)),
                            seed,
                        },
                        width: None,
                        height: None,
                        duration_seconds: Some((d * 1000.0).round() / 1000.0),
                    }
                }
            }
        })
        .collect()
}

pub async fn estimate(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let ws_id = workspace_id(&path)?;
    let body = body_object(&bytes, schemas::estimate_inference())?;
    let mut inner = sim.lock();
    let ws = member_workspace(&inner, user, ws_id)?;
    let custom = ws.custom_models.clone();
    let available = ws.available();
    let r = resolve(&inner, ws_id, &custom, &body)?;
    inner.touch(user, ws_id);
    Ok(ok_json(Value::Object(price_estimate(
        r.estimate, available,
    ))))
}

pub async fn execute(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let ws_id = workspace_id(&path)?;
    let key = idempotency_key(&headers)?;
    let body = body_object(&bytes, schemas::execute_inference())?;
    let fp = fingerprint(
        "POST",
        &format!("/workspaces/{ws_id}/inferences"),
        &Value::Object(body.clone()),
    );

    create_once(&sim, user, ws_id, key.as_deref(), fp, |inner| {
        let custom = member_workspace(inner, user, ws_id)?.custom_models.clone();
        let r = resolve(inner, ws_id, &custom, &body)?;
        let session_id =
            get_str(&body, "session_name").map(|name| inner.session_for(&sim.ids, ws_id, name));
        check_rate_limit(&sim, inner, user, ws_id)?;
        check_balance(inner, ws_id, r.estimate)?;

        let id = RunId(sim.ids.next("inference"));
        let run_seed = r.seed.unwrap_or_else(|| {
            let u = derive_uuid(&[b"output-seed", id.0.as_bytes()]);
            u.as_u64_pair().0
        });
        let kind = RunKind::Inference {
            model_id: r.model.id,
            normalized: r.normalized.clone(),
        };
        let run = Run {
            held: r.held,
            planned_failure: r.failure.clone(),
            planned_outputs: planned_outputs(&r, run_seed),
            session_id,
            ..new_run(&sim, id, kind, user, ws_id, r.estimate)
        };
        let created_at = run.created_at;
        inner.insert_run(run);
        inner.touch(user, ws_id);
        let response = json!({
            "inference_id": id,
            "status": "in_progress",
            "estimated_price_creative_units": r.estimate,
            "poll_interval_seconds": sim.poll_interval(),
            "created_at": rfc3339(created_at),
            "session_id": session_id,
            "normalized_parameters": r.normalized,
        });
        Ok(response)
    })
}

fn find_inference(inner: &Inner, ws: WorkspaceId, id: RunId) -> Result<&Run, ApiError> {
    inner
        .runs
        .get(&id)
        .filter(|r| r.workspace == ws && !r.is_workflow())
        .ok_or(ApiError::RunNotFound)
}

fn ids(path: &RawPath) -> Result<(WorkspaceId, RunId), ApiError> {
    let [ws, run] = path_uuids(&path.0, ["workspace_id", "inference_id"])?;
    Ok((WorkspaceId(ws), RunId(run)))
}

/// `GET …/inferences/{inference_id}` and, with `CANCEL`, its `…/cancel`: both answer with the run as `GET`
/// does; a cancel first stops a run that is still going (a finished one cannot be; a
/// cancelled one stays as it is).
pub async fn run<const CANCEL: bool>(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
) -> Result<Response, ApiError> {
    let (ws_id, run_id) = ids(&path)?;
    let mut inner = sim.lock();
    member_workspace(&inner, user, ws_id)?;
    find_inference(&inner, ws_id, run_id)?;
    if CANCEL {
        cancel_run(&mut inner, run_id)?;
    }
    inner.touch(user, ws_id);
    let body = inner.inference_json(&sim, find_inference(&inner, ws_id, run_id)?, Instant::now());
    Ok(ok_json(body))
}
