//! `/_sim/*`, only with `--enable-admin`: faults, a state dump for assertions, run control,
//! balances, and uploaded bytes read back.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use http::{StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::FaultSpec;
use crate::ids::{FileId, RunId, WorkspaceId};
use crate::problem::{ApiError, ValidationItem, loc};
use crate::state::{Failure, FileContent, RunKind, RunState, Sim, rfc3339};

pub fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/_sim/faults",
            get(list_faults)
                .post(add_faults)
                .put(replace_faults)
                .delete(clear_faults),
        )
        .route("/_sim/faults/{id}", delete(remove_fault))
        .route("/_sim/state", get(state))
        .route("/_sim/runs/{id}/finish", post(finish_run))
        .route("/_sim/runs/{id}/fail", post(fail_run))
        .route("/_sim/workspaces/{id}/balance", post(set_balance))
        .route("/_sim/files/{id}", get(file_bytes))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::validation(ValidationItem::new(loc(&["body"]), "value_error", msg))
}

/// One rule or a list of rules.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(FaultSpec),
    Many(Vec<FaultSpec>),
}

fn parse_specs(bytes: &Bytes) -> Result<Vec<FaultSpec>, ApiError> {
    let specs = match serde_json::from_slice::<OneOrMany>(bytes)
        .map_err(|e| bad(format!("Value error, {e}")))?
    {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    for s in &specs {
        s.check().map_err(|e| bad(format!("Value error, {e}")))?;
    }
    Ok(specs)
}

async fn list_faults(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!({"faults": sim.faults.list()}))
}

async fn add_faults(State(sim): State<Arc<Sim>>, bytes: Bytes) -> Result<Response, ApiError> {
    let added: Vec<FaultSpec> = parse_specs(&bytes)?
        .into_iter()
        .map(|s| sim.faults.add(s))
        .collect();
    Ok((StatusCode::CREATED, Json(json!({"faults": added}))).into_response())
}

async fn replace_faults(
    State(sim): State<Arc<Sim>>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let specs = parse_specs(&bytes)?;
    sim.faults.clear();
    let added: Vec<FaultSpec> = specs.into_iter().map(|s| sim.faults.add(s)).collect();
    Ok(Json(json!({"faults": added})))
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.faults.clear();
    StatusCode::NO_CONTENT
}

async fn remove_fault(State(sim): State<Arc<Sim>>, Path(id): Path<u64>) -> StatusCode {
    if sim.faults.remove(id) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn state(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let inner = sim.lock();
    let now = Instant::now();
    let workspaces: Vec<Value> = inner
        .workspaces
        .iter()
        .map(|w| {
            json!({
                "workspace_id": w.id,
                "slug": w.slug,
                "name": w.name,
                "balance_creative_units": w.balance,
                "reserved_creative_units": w.reserved,
                "available_creative_units": w.available(),
                "members": w.members.iter().map(|m| sim.login(*m)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let runs: Vec<Value> = inner
        .run_order
        .iter()
        .filter_map(|id| inner.runs.get(id))
        .map(|r| {
            let (kind, target) = match &r.kind {
                RunKind::Inference { model_id, .. } => ("inference", json!({"model_id": model_id})),
                RunKind::Workflow { workflow_id, .. } => {
                    ("workflow_run", json!({"workflow_id": workflow_id}))
                }
            };
            let mut v = json!({
                "id": r.id,
                "kind": kind,
                "owner": sim.login(r.owner),
                "workspace_id": r.workspace,
                "status": r.wire_status(now),
                "held": r.held,
                "created_at": rfc3339(r.created_at),
                "completed_at": r.completed_at.map(rfc3339),
                "estimated_price_creative_units": r.estimate,
                "actual_price_creative_units": r.actual,
                "reserved_creative_units": r.reserved,
                "error_code": r.failure.as_ref().map(|f| f.code.clone()),
                "outputs": r.outputs,
                "session_id": r.session_id,
            });
            if let RunKind::Inference { normalized, .. } = &r.kind
                && let Some(map) = v.as_object_mut()
            {
                map.insert("normalized_parameters".into(), normalized.clone());
            }
            if let (Some(map), Some(t)) = (v.as_object_mut(), target.as_object()) {
                map.extend(t.clone());
            }
            v
        })
        .collect();
    let mut concurrency: Vec<Value> = inner
        .max_concurrency
        .iter()
        .map(|((user, ws), max)| {
            json!({
                "user": sim.login(*user),
                "workspace_id": ws,
                "unfinished_runs": inner.unfinished(*user, *ws).len(),
                "max_unfinished_runs": max,
            })
        })
        .collect();
    concurrency.sort_by_key(|v| (v["user"].to_string(), v["workspace_id"].to_string()));
    let mut files: Vec<Value> = inner
        .files
        .values()
        .map(|f| {
            let mut v = json!({
                "file_id": f.id,
                "workspace_id": f.workspace,
                "content_type": f.content_type,
                "status": f.status.as_str(),
                "size_bytes": f.size(),
            });
            if let Some(map) = v.as_object_mut() {
                match &f.content {
                    FileContent::Upload {
                        file_name,
                        source_type,
                        declared_size,
                        ..
                    } => {
                        map.insert("origin".into(), json!("upload"));
                        map.insert("file_name".into(), json!(file_name));
                        map.insert("source_type".into(), json!(source_type));
                        map.insert("declared_size_bytes".into(), json!(declared_size));
                    }
                    FileContent::Output { run, .. } => {
                        map.insert("origin".into(), json!("output"));
                        map.insert("run_id".into(), json!(run));
                    }
                }
            }
            v
        })
        .collect();
    files.sort_by_key(|v| v["file_id"].to_string());
    let c = &inner.counters;
    Json(json!({
        "workspaces": workspaces,
        "runs": runs,
        "concurrency": concurrency,
        "files": files,
        "refresh_token_families": inner.idp.families(&sim),
        "counters": {
            "runs_created": c.inferences_created + c.workflow_runs_created,
            "inferences_created": c.inferences_created,
            "workflow_runs_created": c.workflow_runs_created,
            "upload_urls_created": c.upload_urls_created,
            "rate_limited": c.rate_limited,
            "insufficient_balance": c.insufficient_balance,
            "idempotent_replays": c.idempotent_replays,
            "idempotency_conflicts": c.idempotency_conflicts,
            "faults_applied": c.faults_applied,
            "requests": c.requests,
            "token_refreshes": c.token_refreshes,
            "tokens_issued": c.tokens_issued,
            "refresh_reuse_detected": c.refresh_reuse_detected,
        },
    }))
}

#[derive(Deserialize, Default)]
struct FinishBody {
    /// `complete` or `failed`; absent: the run's planned outcome (a prompt trigger) or complete.
    outcome: Option<String>,
    error_code: Option<String>,
    error: Option<String>,
}

fn run_id(raw: &str) -> Result<RunId, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(RunId)
        .map_err(|_| ApiError::RunNotFound)
}

async fn end_run(sim: &Sim, id: RunId, body: FinishBody) -> Result<Response, ApiError> {
    let mut inner = sim.lock();
    let run = inner.runs.get(&id).ok_or(ApiError::RunNotFound)?;
    if run.state != RunState::Active {
        return Err(ApiError::RunNotCancellable {
            status: run.wire_status(Instant::now()).to_owned(),
        });
    }
    let planned = run.planned_failure.as_ref().map(|(f, _)| f.clone());
    let workflow = run.is_workflow();
    match body.outcome.as_deref() {
        Some("complete") => inner.complete_run(sim, id),
        Some("failed") => {
            let code = body
                .error_code
                .or(planned.as_ref().map(|f| f.code.clone()))
                .unwrap_or_else(|| {
                    if workflow {
                        "BlueprintInvalidRuntimeValueError"
                    } else {
                        "NO_MEDIA_GENERATED"
                    }
                    .to_owned()
                });
            let refusal = [
                "INPUT_GUARDRAIL_VIOLATION",
                "CONTENT_POLICY_VIOLATION",
                "PROMPT_INTELLECTUAL_PROPERTY",
                "NO_MEDIA_GENERATED",
            ]
            .contains(&code.as_str())
            .then(|| code.clone());
            let (code, refusal) = if workflow && refusal.is_some() {
                ("BlueprintInvalidRuntimeValueError".to_owned(), refusal)
            } else {
                (
                    code,
                    planned.as_ref().and_then(|f| f.refusal.clone()).or(refusal),
                )
            };
            let message = body
                .error
                .unwrap_or_else(|| "The run was failed by the simulator's admin API.".into());
            inner.fail_run(
                sim,
                id,
                Failure {
                    code,
                    message,
                    refusal,
                },
            );
        }
        None => match planned {
            Some(f) => inner.fail_run(sim, id, f),
            None => inner.complete_run(sim, id),
        },
        Some(other) => {
            return Err(bad(format!(
                "Value error, outcome must be complete or failed, not {other}"
            )));
        }
    }
    let now = Instant::now();
    let run = inner.runs.get(&id).ok_or(ApiError::RunNotFound)?;
    let body = if run.is_workflow() {
        inner.workflow_run_json(sim, run, now)
    } else {
        inner.inference_json(sim, run, now)
    };
    Ok(Json(body).into_response())
}

async fn finish_run(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let body = if bytes.is_empty() {
        FinishBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("Value error, {e}")))?
    };
    end_run(&sim, run_id(&id)?, body).await
}

async fn fail_run(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let mut body: FinishBody = if bytes.is_empty() {
        FinishBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("Value error, {e}")))?
    };
    body.outcome = Some("failed".into());
    end_run(&sim, run_id(&id)?, body).await
}

#[derive(Deserialize)]
struct BalanceBody {
    balance_creative_units: f64,
}

async fn set_balance(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ws = uuid::Uuid::parse_str(&id)
        .map(WorkspaceId)
        .map_err(|_| ApiError::WorkspaceNotFound)?;
    let body: BalanceBody =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("Value error, {e}")))?;
    if !body.balance_creative_units.is_finite() {
        return Err(bad("Value error, balance must be a finite number"));
    }
    let mut inner = sim.lock();
    let w = inner.workspace_mut(ws).ok_or(ApiError::WorkspaceNotFound)?;
    w.balance = body.balance_creative_units;
    Ok(Json(json!({
        "workspace_id": w.id,
        "balance_creative_units": w.balance,
        "reserved_creative_units": w.reserved,
        "available_creative_units": w.available(),
    })))
}

async fn file_bytes(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map(FileId)
        .map_err(|_| ApiError::FileNotFound)?;
    let (bytes, content_type, status) = {
        let inner = sim.lock();
        let f = inner.files.get(&id).ok_or(ApiError::FileNotFound)?;
        (f.bytes(), f.content_type.clone(), f.status)
    };
    let bytes = bytes.ok_or(ApiError::FileNotFound)?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::HeaderName::from_static("x-sim-file-status"),
                status.as_str().to_owned(),
            ),
        ],
        bytes,
    )
        .into_response())
}
