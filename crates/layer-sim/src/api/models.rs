//! `GET /workspaces/{ws}/models` (filters: `modality`, `capability` repeated or
//! comma-separated, all must match; `search`) and `GET /workspaces/{ws}/models/{model_id}`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::json;

use super::{
    RawPath, listing_query, member_workspace, ok_json, paginate, path_uuids, query_one,
    workspace_id,
};
use crate::auth::Caller;
use crate::catalogue::{CAPABILITY_FILTERS, MODALITIES, model_in_workspace, models_for};
use crate::ids::{ModelId, WorkspaceId};
use crate::problem::{ApiError, ValidationItem};
use crate::state::Sim;
use crate::validation::{Check, check_value, finish};

pub async fn list(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
    raw: RawQuery,
) -> Result<Response, ApiError> {
    let ws_id = workspace_id(&path)?;
    let (pairs, page, mut errors) = listing_query(&raw);
    let modality = query_one(&pairs, "modality").filter(|m| !m.is_empty());
    if let Some(m) = modality {
        check_value(
            &json!(m),
            &Check::Enum(MODALITIES),
            &[json!("query"), json!("modality")],
            &mut errors,
        );
    }
    let capabilities: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "capability" || k == "capabilities")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    for cap in &capabilities {
        if !CAPABILITY_FILTERS.contains(&cap.as_str()) {
            errors.push(
                ValidationItem::new(
                    vec![json!("query"), json!("capability")],
                    "enum",
                    format!("Input should be one of: {}", CAPABILITY_FILTERS.join(", ")),
                )
                .input(json!(cap))
                .ctx(json!({"expected": CAPABILITY_FILTERS})),
            );
        }
    }
    let search = query_one(&pairs, "search")
        .or_else(|| query_one(&pairs, "q"))
        .map(str::to_lowercase)
        .filter(|s| !s.is_empty());
    finish(errors)?;

    let mut inner = sim.lock();
    let ws = member_workspace(&inner, user, ws_id)?;
    let items = models_for(&ws.custom_models)
        .filter(|m| modality.is_none_or(|want| m.modality.as_str() == want))
        .filter(|m| capabilities.iter().all(|c| m.has_capability(c)))
        .filter(|m| {
            search.as_deref().is_none_or(|s| {
                m.name.to_lowercase().contains(s)
                    || m.description.to_lowercase().contains(s)
                    || m.base_model_id.contains(s)
            })
        })
        .map(|m| m.summary())
        .collect();
    inner.touch(user, ws_id);
    let (models, pagination) = paginate(items, page);
    Ok(ok_json(json!({"models": models, "pagination": pagination})))
}

pub async fn get_one(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
) -> Result<Response, ApiError> {
    let [ws_id, model_id] = path_uuids(&path.0, ["workspace_id", "model_id"])?;
    let ws_id = WorkspaceId(ws_id);
    let mut inner = sim.lock();
    let ws = member_workspace(&inner, user, ws_id)?;
    let model =
        model_in_workspace(ModelId(model_id), &ws.custom_models).ok_or(ApiError::ModelNotFound)?;
    inner.touch(user, ws_id);
    Ok(ok_json(json!({"model": model.detail()})))
}
