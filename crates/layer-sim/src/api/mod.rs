//! The v1 REST API under `/api/v1`, one module per resource.

pub mod files;
pub mod inferences;
pub mod models;
pub mod workflows;
pub mod workspaces;

pub use crate::idempotency::{fingerprint, idempotency_key, idempotent_replay, idempotent_store};
pub use crate::limits::{check_balance, check_rate_limit};

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use http::StatusCode;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::ids::{RunId, WorkspaceId};
use crate::problem::{ApiError, ValidationItem};
use crate::state::{Inner, Run, RunKind, RunState, Sim, UserIdx, WorkspaceState};

pub fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/workspaces", get(workspaces::list))
        .route("/workspaces/{workspace_id}", get(workspaces::get_one))
        .route("/workspaces/{workspace_id}/models", get(models::list))
        .route(
            "/workspaces/{workspace_id}/models/{model_id}",
            get(models::get_one),
        )
        .route(
            "/workspaces/{workspace_id}/inferences/estimate",
            post(inferences::estimate),
        )
        .route(
            "/workspaces/{workspace_id}/inferences",
            post(inferences::execute),
        )
        .route(
            "/workspaces/{workspace_id}/inferences/{inference_id}",
            get(inferences::run::<false>),
        )
        .route(
            "/workspaces/{workspace_id}/inferences/{inference_id}/cancel",
            post(inferences::run::<true>),
        )
        .route("/workspaces/{workspace_id}/workflows", get(workflows::list))
        .route(
            "/workspaces/{workspace_id}/workflows/{workflow_id}/estimate",
            post(workflows::estimate),
        )
        .route(
            "/workspaces/{workspace_id}/workflows/{workflow_id}/runs",
            post(workflows::execute),
        )
        .route(
            "/workspaces/{workspace_id}/workflows/{workflow_id}/runs/{run_id}",
            get(workflows::run::<false>),
        )
        .route(
            "/workspaces/{workspace_id}/workflows/{workflow_id}/runs/{run_id}/cancel",
            post(workflows::run::<true>),
        )
        .route(
            "/workspaces/{workspace_id}/files/upload-url",
            post(files::request_upload_url),
        )
}

/// A request body read in full; too large a body is a 413 problem, not axum's plain text.
pub struct JsonBytes(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(JsonBytes)
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::Internal(format!("reading the body failed: {}", e.body_text()))
                }
            })
    }
}

/// Path parameters, as raw text: parsing them is validation, answered with a 422.
pub type RawPath = Path<Vec<(String, String)>>;

/// Parses the named UUID path parameters, collecting every malformed one.
pub fn path_uuids<const N: usize>(
    params: &[(String, String)],
    names: [&str; N],
) -> Result<[Uuid; N], ApiError> {
    let mut out = [Uuid::nil(); N];
    let mut errors = Vec::new();
    for (slot, name) in out.iter_mut().zip(names) {
        let raw = params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str());
        match Uuid::parse_str(raw) {
            Ok(u) => *slot = u,
            Err(e) => errors.push(
                ValidationItem::new(
                    vec![json!("path"), json!(name)],
                    "uuid_parsing",
                    format!("Input should be a valid UUID, {e}"),
                )
                .input(json!(raw))
                .ctx(json!({ "error": e.to_string() })),
            ),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The `workspace_id` path parameter.
pub fn workspace_id(path: &RawPath) -> Result<WorkspaceId, ApiError> {
    let [id] = path_uuids(&path.0, ["workspace_id"])?;
    Ok(WorkspaceId(id))
}

/// A listing's query: its pairs in order, its page, and the problems found in the page
/// parameters (the caller adds its filters' problems before `finish`).
pub fn listing_query(raw: &RawQuery) -> (Vec<(String, String)>, Page, Vec<ValidationItem>) {
    let pairs = query_pairs(raw);
    let mut errors = Vec::new();
    let page = page_params(&pairs, &mut errors);
    (pairs, page, errors)
}

/// Query pairs in order.
pub fn query_pairs(raw: &RawQuery) -> Vec<(String, String)> {
    raw.0
        .as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn query_one<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `limit` (1-100, default 20) and `cursor`.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

pub fn page_params(pairs: &[(String, String)], errors: &mut Vec<ValidationItem>) -> Page {
    let mut page = Page {
        offset: 0,
        limit: 20,
    };
    if let Some(raw) = query_one(pairs, "limit") {
        match raw.trim().parse::<i64>() {
            Ok(n) if n < 1 => errors.push(
                ValidationItem::new(
                    vec![json!("query"), json!("limit")],
                    "greater_than_equal",
                    "Input should be greater than or equal to 1",
                )
                .input(json!(raw))
                .ctx(json!({"ge": 1})),
            ),
            Ok(n) if n > 100 => errors.push(
                ValidationItem::new(
                    vec![json!("query"), json!("limit")],
                    "less_than_equal",
                    "Input should be less than or equal to 100",
                )
                .input(json!(raw))
                .ctx(json!({"le": 100})),
            ),
            Ok(n) => page.limit = n as usize,
            Err(_) => errors.push(
                ValidationItem::new(
                    vec![json!("query"), json!("limit")],
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                )
                .input(json!(raw)),
            ),
        }
    }
    if let Some(raw) = query_one(pairs, "cursor").filter(|c| !c.is_empty()) {
        match decode_cursor(raw) {
            Some(offset) => page.offset = offset,
            None => errors.push(
                ValidationItem::new(
                    vec![json!("query"), json!("cursor")],
                    "value_error",
                    "Value error, invalid cursor: pass next_cursor from a previous page unchanged",
                )
                .input(json!(raw)),
            ),
        }
    }
    page
}

fn encode_cursor(offset: usize) -> String {
    B64.encode(format!("offset:{offset}"))
}

fn decode_cursor(raw: &str) -> Option<usize> {
    let bytes = B64.decode(raw).ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// One page of `items` and its `PaginationOutput`.
pub fn paginate(items: Vec<Value>, page: Page) -> (Vec<Value>, Value) {
    let total = items.len();
    let end = page.offset.saturating_add(page.limit).min(total);
    let slice: Vec<Value> = items
        .into_iter()
        .skip(page.offset)
        .take(end.saturating_sub(page.offset))
        .collect();
    let has_more = end < total;
    let pagination = json!({
        "next_cursor": has_more.then(|| encode_cursor(end)),
        "has_more_results": has_more,
        "total_count": total,
    });
    (slice, pagination)
}

/// The workspace, if it exists and the caller is a member.
pub fn member_workspace(
    inner: &Inner,
    user: UserIdx,
    id: WorkspaceId,
) -> Result<&WorkspaceState, ApiError> {
    let ws = inner.workspace(id).ok_or(ApiError::WorkspaceNotFound)?;
    if ws.members.contains(&user) {
        Ok(ws)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// The price part of an estimate answer, shared by inference and workflow estimates
/// (models.py `EstimateForgePriceOutput`).
pub fn price_estimate(estimate: f64, available: f64) -> Map<String, Value> {
    let body = json!({
        "estimated_price_creative_units": estimate,
        "workspace_balance_creative_units": available,
        "estimated_remaining_balance_creative_units": crate::state::round_cu(available - estimate),
        "has_sufficient_creative_units": available + 1e-9 >= estimate,
    });
    match body {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A run `owner` has just started, reserving its whole estimate; the caller adds what its
/// kind plans (outputs, failure, hold, session).
pub fn new_run(
    sim: &Sim,
    id: RunId,
    kind: RunKind,
    owner: UserIdx,
    workspace: WorkspaceId,
    estimate: f64,
) -> Run {
    Run {
        id,
        kind,
        owner,
        workspace,
        state: RunState::Active,
        created_at: Utc::now(),
        completed_at: None,
        started: Instant::now(),
        duration: sim.config.effective_run_duration(),
        held: false,
        planned_failure: None,
        failure: None,
        estimate,
        actual: None,
        reserved: estimate,
        planned_outputs: Vec::new(),
        outputs: Vec::new(),
        session_id: None,
        refused_inference: None,
    }
}

/// Cancels a run that is still going; a cancelled run stays as it is, a finished one cannot
/// be cancelled.
pub fn cancel_run(inner: &mut Inner, id: RunId) -> Result<(), ApiError> {
    let Some(run) = inner.runs.get(&id) else {
        return Err(ApiError::RunNotFound);
    };
    match run.state {
        RunState::Active => inner.cancel_run(id),
        RunState::Cancelled => {}
        RunState::Complete | RunState::Failed => {
            return Err(ApiError::RunNotCancellable {
                status: run.wire_status(Instant::now()).to_owned(),
            });
        }
    }
    Ok(())
}

/// A creating POST in `ws_id`, done once per idempotency key: under the state lock the caller
/// must be a member, a repeated request gets the stored answer, and otherwise `create` makes
/// the answer, which is then remembered for the key.
pub fn create_once(
    sim: &Sim,
    user: UserIdx,
    ws_id: WorkspaceId,
    key: Option<&str>,
    fp: [u8; 32],
    create: impl FnOnce(&mut Inner) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let mut inner = sim.lock();
    member_workspace(&inner, user, ws_id)?;
    if let Some(replay) = idempotent_replay(&mut inner, user, key, &fp)? {
        return Ok(replay);
    }
    let response = create(&mut inner)?;
    idempotent_store(&mut inner, user, key, fp, &response);
    Ok(ok_json(response))
}

pub fn ok_json(body: Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_pages_end() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let (first, p) = paginate(
            items.clone(),
            Page {
                offset: 0,
                limit: 2,
            },
        );
        assert_eq!(first.len(), 2);
        let next = p["next_cursor"].as_str().unwrap();
        assert_eq!(decode_cursor(next), Some(2));
        let (last, p) = paginate(
            items,
            Page {
                offset: 4,
                limit: 2,
            },
        );
        assert_eq!(last.len(), 1);
        assert_eq!(p["has_more_results"], false);
        assert!(p["next_cursor"].is_null());
    }
}
