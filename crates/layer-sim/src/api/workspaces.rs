//! `GET /workspaces` and `GET /workspaces/{workspace_id}`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::{RawPath, listing_query, member_workspace, ok_json, paginate, workspace_id};
use crate::auth::Caller;

use crate::problem::ApiError;
use crate::state::{Inner, Sim, UserIdx, WorkspaceState, rfc3339};
use crate::validation::finish;

/// `WorkspaceInfo`.
fn info(inner: &Inner, user: UserIdx, ws: &WorkspaceState) -> Value {
    json!({
        "workspace_id": ws.id,
        "slug": ws.slug,
        "name": ws.name,
        "balance_creative_units": ws.balance,
        "reserved_creative_units": ws.reserved,
        "available_creative_units": ws.available(),
        "last_active_at": inner.last_active.get(&(user, ws.id)).copied().map(rfc3339),
    })
}

pub async fn list(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    raw: RawQuery,
) -> Result<Response, ApiError> {
    let (_, page, errors) = listing_query(&raw);
    finish(errors)?;
    let inner = sim.lock();
    let mut mine: Vec<&WorkspaceState> = inner
        .workspaces
        .iter()
        .filter(|w| w.members.contains(&user))
        .collect();
    // Most recently active first; never-active ones after, by name.
    mine.sort_by(|a, b| {
        let la = inner.last_active.get(&(user, a.id));
        let lb = inner.last_active.get(&(user, b.id));
        lb.cmp(&la).then_with(|| a.name.cmp(&b.name))
    });
    let items = mine.iter().map(|w| info(&inner, user, w)).collect();
    let (workspaces, pagination) = paginate(items, page);
    Ok(ok_json(
        json!({"workspaces": workspaces, "pagination": pagination}),
    ))
}

pub async fn get_one(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
) -> Result<Response, ApiError> {
    let ws_id = workspace_id(&path)?;
    let mut inner = sim.lock();
    member_workspace(&inner, user, ws_id)?;
    inner.touch(user, ws_id);
    let ws = member_workspace(&inner, user, ws_id)?;
    Ok(ok_json(info(&inner, user, ws)))
}
