//! Workflows: list, estimate, execute, poll a run, cancel a run.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use http::HeaderMap;
use serde_json::{Map, Value, json};

use super::{
    JsonBytes, RawPath, cancel_run, check_balance, check_rate_limit, create_once, fingerprint,
    idempotency_key, listing_query, member_workspace, new_run, ok_json, paginate, path_uuids,
    price_estimate, query_one, workspace_id,
};
use crate::auth::Caller;
use crate::catalogue::{WorkflowDef, workflow_in_workspace, workflows};
use crate::files_check::{Media, check_file};
use crate::ids::{FileId, RunId, SessionId, WorkflowId, WorkspaceId, derive_uuid};
use crate::pricing::{WorkflowPlan, plan_workflow};
use crate::problem::{ApiError, ValidationItem, loc};
use crate::state::{Failure, Inner, Run, RunKind, Sim, rfc3339, workflow_output_media};
use crate::validation::{Check, body_object, check_value, finish, get_str};
use crate::{schemas, triggers};

pub async fn list(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
    raw: RawQuery,
) -> Result<Response, ApiError> {
    let ws_id = workspace_id(&path)?;
    let (pairs, page, errors) = listing_query(&raw);
    finish(errors)?;
    let search = query_one(&pairs, "search")
        .map(str::to_lowercase)
        .filter(|s| !s.is_empty());
    let mut inner = sim.lock();
    member_workspace(&inner, user, ws_id)?;
    let items = workflows()
        .iter()
        .filter(|w| {
            search.as_deref().is_none_or(|s| {
                w.name.to_lowercase().contains(s) || w.description.to_lowercase().contains(s)
            })
        })
        .map(WorkflowDef::summary)
        .collect();
    inner.touch(user, ws_id);
    let (page_items, pagination) = paginate(items, page);
    Ok(ok_json(
        json!({"workflows": page_items, "pagination": pagination}),
    ))
}

/// Checks `value` against `check` and, when that passes, against the schema's `enum`;
/// `allows` says whether one allowed value matches.
fn check_with_enum(
    value: &Value,
    check: &Check,
    schema: &Value,
    at: Vec<Value>,
    errors: &mut Vec<ValidationItem>,
    allows: impl Fn(&Value) -> bool,
) {
    let before = errors.len();
    check_value(value, check, &at, errors);
    if errors.len() == before
        && let Some(allowed) = schema["enum"].as_array()
        && !allowed.iter().any(allows)
    {
        errors.push(
            ValidationItem::new(
                at,
                "enum",
                format!("Input should be one of {}", Value::Array(allowed.clone())),
            )
            .input(value.clone()),
        );
    }
}

/// Checks `inputs` against the workflow's declared inputs and their `value_schema`.
fn check_inputs(
    inner: &Inner,
    ws: WorkspaceId,
    def: &WorkflowDef,
    inputs: &Map<String, Value>,
) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    for name in inputs.keys() {
        if !def.inputs.iter().any(|i| i.name == name) {
            let known: Vec<&str> = def.inputs.iter().map(|i| i.name).collect();
            errors.push(
                ValidationItem::new(
                    loc(&["body", "inputs", name]),
                    "extra_forbidden",
                    format!(
                        "Extra inputs are not permitted; this workflow takes: {}",
                        known.join(", ")
                    ),
                )
                .input(inputs[name].clone()),
            );
        }
    }
    for input in &def.inputs {
        let at = loc(&["body", "inputs", input.name]);
        let Some(value) = inputs.get(input.name).filter(|v| !v.is_null()) else {
            if input.required {
                errors.push(
                    ValidationItem::new(at, "missing", "Field required")
                        .input(Value::Object(inputs.clone())),
                );
            }
            continue;
        };
        let schema = &input.value_schema;
        match input.kind {
            "file" => {
                let before = errors.len();
                check_value(value, &Check::Uuid, &at, &mut errors);
                if errors.len() == before
                    && let Some(id) = value.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok())
                {
                    check_file(inner, ws, FileId(id), Media::Image, at, &mut errors)?;
                }
            }
            "boolean" => check_value(value, &Check::Bool, &at, &mut errors),
            "number" => {
                let integer = schema["type"] == "integer";
                let check = if integer {
                    Check::Int {
                        gt: None,
                        ge: schema["minimum"].as_i64(),
                        le: schema["maximum"].as_i64(),
                    }
                } else {
                    Check::Float {
                        gt: None,
                        ge: schema["minimum"].as_f64(),
                        le: schema["maximum"].as_f64(),
                    }
                };
                check_with_enum(value, &check, schema, at, &mut errors, |a| {
                    a.as_f64() == crate::validation::as_float(value)
                });
            }
            _ => {
                let max = schema["maxLength"].as_u64().map(|n| n as usize);
                let min = schema["minLength"].as_u64().map(|n| n as usize);
                let check = Check::Str {
                    min_len: min,
                    max_len: max,
                };
                check_with_enum(value, &check, schema, at, &mut errors, |a| a == value);
            }
        }
    }
    finish(errors)
}

fn inputs_of(body: &Map<String, Value>) -> Map<String, Value> {
    body.get("inputs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn output_counts(def: &WorkflowDef, plan: &WorkflowPlan) -> Vec<Value> {
    def.outputs
        .iter()
        .zip(&plan.output_counts)
        .map(|(o, n)| json!({"output": WorkflowDef::output_json(o), "count": n}))
        .collect()
}

pub async fn estimate(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let [ws_id, wf_id] = path_uuids(&path.0, ["workspace_id", "workflow_id"])?;
    let ws_id = WorkspaceId(ws_id);
    let body = body_object(&bytes, schemas::estimate_workflow())?;
    let mut inner = sim.lock();
    let available = member_workspace(&inner, user, ws_id)?.available();
    let def = workflow_in_workspace(WorkflowId(wf_id), ws_id).ok_or(ApiError::WorkflowNotFound)?;
    let inputs = inputs_of(&body);
    check_inputs(&inner, ws_id, def, &inputs)?;
    let plan = plan_workflow(def, &inputs);
    inner.touch(user, ws_id);
    let mut body = price_estimate(plan.estimate, available);
    body.insert("output_counts".into(), json!(output_counts(def, &plan)));
    Ok(ok_json(Value::Object(body)))
}

pub async fn execute(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let [ws_raw, wf_raw] = path_uuids(&path.0, ["workspace_id", "workflow_id"])?;
    let ws_id = WorkspaceId(ws_raw);
    let key = idempotency_key(&headers)?;
    let body = body_object(&bytes, schemas::execute_workflow())?;
    let fp = fingerprint(
        "POST",
        &format!("/workspaces/{ws_raw}/workflows/{wf_raw}/runs"),
        &Value::Object(body.clone()),
    );

    create_once(&sim, user, ws_id, key.as_deref(), fp, |inner| {
        let def =
            workflow_in_workspace(WorkflowId(wf_raw), ws_id).ok_or(ApiError::WorkflowNotFound)?;
        let inputs = inputs_of(&body);
        check_inputs(inner, ws_id, def, &inputs)?;
        let plan = plan_workflow(def, &inputs);
        let session_id =
            match get_str(&body, "session_id").and_then(|s| uuid::Uuid::parse_str(s).ok()) {
                Some(id) => Some(SessionId(id)),
                None => get_str(&body, "session_name")
                    .map(|name| inner.session_for(&sim.ids, ws_id, name)),
            };
        check_rate_limit(&sim, inner, user, ws_id)?;
        check_balance(inner, ws_id, plan.estimate)?;

        // The generating step is where refusals strike.
        let failing_step = if def.steps.len() > 1 { 1 } else { 0 };
        let step_name = def.steps.get(failing_step).copied().unwrap_or("Generate");
        let text: String = inputs
            .values()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        let planned_failure: Option<(Failure, f64)> = triggers::workflow_failure(&text, step_name);
        let id = RunId(sim.ids.next("workflow-run"));
        let base_seed = derive_uuid(&[b"output-seed", id.0.as_bytes()])
            .as_u64_pair()
            .0;
        let mut planned_outputs = Vec::new();
        for (o, count) in def.outputs.iter().zip(&plan.output_counts) {
            for _ in 0..*count {
                let seed = base_seed.wrapping_add(planned_outputs.len() as u64);
                planned_outputs.push(workflow_output_media(
                    o.media,
                    seed,
                    plan.image_size,
                    plan.duration_seconds,
                ));
            }
        }
        let kind = RunKind::Workflow {
            workflow_id: def.id,
            steps: def.steps,
            failing_step,
        };
        let run = Run {
            held: text.contains(triggers::HOLD),
            planned_failure,
            planned_outputs,
            session_id,
            ..new_run(&sim, id, kind, user, ws_id, plan.estimate)
        };
        let created_at = run.created_at;
        inner.insert_run(run);
        inner.touch(user, ws_id);
        let response = json!({
            "run_id": id,
            "status": "pending",
            "estimated_price_creative_units": plan.estimate,
            "poll_interval_seconds": sim.poll_interval(),
            "created_at": rfc3339(created_at),
            "session_id": session_id,
            "expected_events": [],
        });
        Ok(response)
    })
}

fn find_run(inner: &Inner, ws: WorkspaceId, wf: WorkflowId, id: RunId) -> Result<&Run, ApiError> {
    inner
        .runs
        .get(&id)
        .filter(|r| {
            r.workspace == ws
                && matches!(r.kind, RunKind::Workflow { workflow_id, .. } if workflow_id == wf)
        })
        .ok_or(ApiError::RunNotFound)
}

fn ids(path: &RawPath) -> Result<(WorkspaceId, WorkflowId, RunId), ApiError> {
    let [ws, wf, run] = path_uuids(&path.0, ["workspace_id", "workflow_id", "run_id"])?;
    Ok((WorkspaceId(ws), WorkflowId(wf), RunId(run)))
}

/// `GET …/workflows/{workflow_id}/runs/{run_id}` and, with `CANCEL`, its `…/cancel`: both answer with the run as `GET`
/// does; a cancel first stops a run that is still going (a finished one cannot be; a
/// cancelled one stays as it is).
pub async fn run<const CANCEL: bool>(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
) -> Result<Response, ApiError> {
    let (ws_id, wf_id, run_id) = ids(&path)?;
    let mut inner = sim.lock();
    member_workspace(&inner, user, ws_id)?;
    workflow_in_workspace(wf_id, ws_id).ok_or(ApiError::WorkflowNotFound)?;
    find_run(&inner, ws_id, wf_id, run_id)?;
    if CANCEL {
        cancel_run(&mut inner, run_id)?;
    }
    inner.touch(user, ws_id);
    let run = find_run(&inner, ws_id, wf_id, run_id)?;
    let body = inner.workflow_run_json(&sim, run, Instant::now());
    Ok(ok_json(body))
}
