//! `list_workflows`, `estimate_workflow_price`, `execute_workflow`, `get_workflow_run`,
//! `cancel_workflow_run`.

use layer_api::{
    EstimateWorkflowRequest, ExecuteWorkflowRequest, ListWorkflowsQuery, WorkflowId, WorkflowRun,
    WorkflowRunId, WorkspaceId,
};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use super::runs::{OutputFile, resource_links, success_summary};
use super::schema::{
    array, boolean, integer, nullable, number, object, open_object, pagination_properties, string,
    string_max, uuid,
};
use super::workspaces::{cursor, page_limit};
use super::{Args, Behaviour, ToolContext, ToolSpec, success, to_json};
use crate::errors::{Subject, ToolError};
use crate::upstream::{CallKind, Outcome};

fn io_schema(with_required: bool) -> Value {
    let mut props = vec![
        ("name", string("The key in `inputs`.")),
        (
            "type",
            string("Value type, e.g. string, number, boolean, file (a file_id), enum."),
        ),
        ("description", string("What it is for.")),
        ("display_name", nullable(string("Label in the Layer app."))),
        (
            "value_schema",
            nullable(
                json!({"type": "object", "description": "JSON Schema the value must satisfy."}),
            ),
        ),
    ];
    let mut required = vec!["name", "type"];
    if with_required {
        props.push(("required", boolean("Whether inputs must include it.")));
        required.push("required");
    }
    open_object(props, &required)
}

fn workflow_schema() -> Value {
    open_object(
        vec![
            ("workflow_id", uuid("Pass as workflow_id.")),
            ("name", string("Display name.")),
            ("description", string("What it makes.")),
            ("modality", nullable(string("Main output modality."))),
            (
                "inputs",
                array(
                    "What execute_workflow's `inputs` takes, keyed by name.",
                    io_schema(true),
                    None,
                ),
            ),
            (
                "outputs",
                array("What a run produces.", io_schema(false), None),
            ),
        ],
        &["workflow_id", "name", "inputs", "outputs"],
    )
}

fn run_ids() -> Vec<(&'static str, Value)> {
    vec![
        (
            "workspace_id",
            uuid("The workspace the run was started in."),
        ),
        ("workflow_id", uuid("The workflow.")),
        ("run_id", uuid("From execute_workflow.")),
    ]
}

fn run_schema() -> Value {
    open_object(
        vec![
            ("workspace_id", uuid("The workspace.")),
            ("workflow_id", uuid("The workflow.")),
            ("run_id", uuid("The run.")),
            (
                "status",
                string("pending or running; or terminal: success, failure, cancelled."),
            ),
            (
                "poll_interval_seconds",
                nullable(integer(
                    "While running: wait this long before polling again.",
                    0,
                    None,
                    None,
                )),
            ),
            (
                "steps",
                array(
                    "Each step's status.",
                    open_object(
                        vec![("name", string("Step.")), ("status", string("Its status."))],
                        &["name", "status"],
                    ),
                    None,
                ),
            ),
            (
                "estimated_price_creative_units",
                nullable(number("Reserved at start.", None, None)),
            ),
            (
                "actual_price_creative_units",
                nullable(number("Charged on success.", None, None)),
            ),
            (
                "outputs",
                nullable(array(
                    "The files made.",
                    open_object(
                        vec![
                            ("url", string("Download URL.")),
                            ("content_type", string("MIME type.")),
                        ],
                        &["url", "content_type"],
                    ),
                    None,
                )),
            ),
            ("error", nullable(string("Why it failed."))),
            (
                "error_code",
                nullable(string("e.g. BlueprintInvalidRuntimeValueError.")),
            ),
            (
                "refusals",
                array(
                    "Generations refused by a guardrail or the provider.",
                    json!({"type": "object"}),
                    None,
                ),
            ),
            (
                "summary",
                string("One-paragraph account of the run for the user."),
            ),
        ],
        &["workspace_id", "workflow_id", "run_id", "status", "summary"],
    )
}

pub fn specs() -> Vec<ToolSpec> {
    let mut list_props = vec![(
        "workflows",
        array("The workflows on this page.", workflow_schema(), None),
    )];
    list_props.extend(pagination_properties());
    let base = || {
        vec![
            ("workspace_id", uuid("The workspace, from list_workspaces.")),
            ("workflow_id", uuid("The workflow, from list_workflows.")),
            (
                "inputs",
                json!({"type": "object", "description": "Values keyed by the workflow's input names (list_workflows shows each input's type, value_schema and whether it is required). File inputs take a file_id."}),
            ),
        ]
    };
    let mut execute_props = base();
    execute_props.push((
        "session_name",
        string_max(
            "Group the run under a session of this name in the Layer app.",
            255,
        ),
    ));
    execute_props.push((
        "idempotency_key",
        string_max("Any unique string (e.g. a UUID). Retrying with the same key and inputs returns the run already started instead of starting another.", 255),
    ));
    vec![
        ToolSpec {
            name: "list_workflows",
            title: "List workflows",
            description: "Lists the published workflows of a workspace: multi-step pipelines (e.g. a product shot from a product photo and a scene prompt) with their typed inputs (name, type, required, value_schema, default) and outputs. Use the inputs to build execute_workflow's `inputs`. Filter with search; paginated: pass next_cursor back as cursor.".to_owned(),
            input: object(
                vec![
                    ("workspace_id", uuid("The workspace, from list_workspaces.")),
                    ("search", string_max("Text to match in names and descriptions.", 200)),
                    ("limit", integer("Workflows per page.", 1, Some(100), Some(20))),
                    ("cursor", string("next_cursor from the previous page.")),
                ],
                &["workspace_id"],
            ),
            output: open_object(list_props, &["workflows", "has_more_results"]),
            behaviour: Behaviour::ReadOnly,
        },
        ToolSpec {
            name: "estimate_workflow_price",
            title: "Estimate a workflow run",
            description: "Prices a workflow run without running it: estimated_price_creative_units, the available balance, the balance after the run, has_sufficient_creative_units, and output_counts (how many of each output it makes). Pass the inputs you will execute with. Ask the user before spending more than about 20 Creative Units. Costs nothing.".to_owned(),
            input: object(base(), &["workspace_id", "workflow_id", "inputs"]),
            output: open_object(
                vec![
                    ("estimated_price_creative_units", number("The run's estimated price.", None, None)),
                    ("workspace_balance_creative_units", number("Available balance now.", None, None)),
                    ("estimated_remaining_balance_creative_units", number("Available balance after the run.", None, None)),
                    ("has_sufficient_creative_units", boolean("Whether the balance covers it.")),
                    ("output_counts", array("Outputs the run makes.", json!({"type": "object"}), None)),
                ],
                &["estimated_price_creative_units", "has_sufficient_creative_units"],
            ),
            behaviour: Behaviour::ReadOnly,
        },
        ToolSpec {
            name: "execute_workflow",
            title: "Run a workflow",
            description: "Starts a workflow run and returns at once with run_id, status pending and poll_interval_seconds; the estimated price is reserved from the workspace balance. Estimate first and ask the user before spending more than about 20 Creative Units. Then poll get_workflow_run every poll_interval_seconds until success, failure or cancelled. At most 5 runs may be in progress per user per workspace. Pass idempotency_key to retry safely.".to_owned(),
            input: object(execute_props, &["workspace_id", "workflow_id", "inputs"]),
            output: open_object(
                vec![
                    ("workspace_id", uuid("The workspace.")),
                    ("workflow_id", uuid("The workflow.")),
                    ("run_id", uuid("Poll it with get_workflow_run.")),
                    ("status", string("pending.")),
                    ("estimated_price_creative_units", number("Reserved now.", None, None)),
                    ("poll_interval_seconds", integer("Wait this long before polling.", 0, None, None)),
                    ("created_at", json!({"type": "string", "format": "date-time"})),
                    ("session_id", nullable(uuid("The Layer session it belongs to."))),
                    ("next_step", string("What to do next.")),
                ],
                &["workspace_id", "workflow_id", "run_id", "status", "poll_interval_seconds"],
            ),
            behaviour: Behaviour::Writes { destructive: false, idempotent: false, open_world: false },
        },
        ToolSpec {
            name: "get_workflow_run",
            title: "Check a workflow run",
            description: "Returns a workflow run's status and steps. While pending or running, wait poll_interval_seconds and call again. On success: the outputs, actual_price_creative_units, a resource link per output and a summary with the balance left: show them to the user. On failure: error, error_code and refusals say why (nothing is charged).".to_owned(),
            input: object(run_ids(), &["workspace_id", "workflow_id", "run_id"]),
            output: run_schema(),
            behaviour: Behaviour::ReadOnly,
        },
        ToolSpec {
            name: "cancel_workflow_run",
            title: "Cancel a workflow run",
            description: "Stops a pending or running workflow run; its reserved Creative Units are released and nothing is charged. Outputs not yet made are lost. A run that already finished answers RUN_NOT_CANCELLABLE. Confirm with the user first unless they asked for it.".to_owned(),
            input: object(run_ids(), &["workspace_id", "workflow_id", "run_id"]),
            output: run_schema(),
            behaviour: Behaviour::Writes { destructive: true, idempotent: true, open_world: false },
        },
    ]
}

fn inputs(args: &Args) -> Result<serde_json::Map<String, Value>, ToolError> {
    args.opt_object("inputs")?
        .ok_or_else(|| ToolError::invalid("`inputs` is required: an object keyed by the workflow's input names (see list_workflows)"))
}

pub async fn list_workflows(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let query = ListWorkflowsQuery {
        search: args.opt_string("search", 200)?,
        limit: page_limit(&args)?,
        cursor: cursor(&args)?,
    };
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Read)
        .await?;
    let result = admission.client().list_workflows(workspace, &query).await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let page = result.map_err(|e| ToolError::from_layer(&e, Subject::Workspace))?;
    let structured = json!({
        "workflows": to_json(&page.items)?,
        "next_cursor": page.next_cursor().map(|c| c.as_str().to_owned()),
        "has_more_results": page.pagination.has_more_results,
        "total_count": page.pagination.total_count,
    });
    Ok(success(structured, vec![]))
}

pub async fn estimate_workflow_price(
    ctx: &ToolContext,
    args: Args,
) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let workflow: WorkflowId = args.id("workflow_id")?;
    let request = EstimateWorkflowRequest {
        inputs: inputs(&args)?,
    };
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::Read)
        .await?;
    let result = admission
        .client()
        .estimate_workflow(workspace, workflow, &request)
        .await;
    admission.settle(if result.is_ok() {
        Outcome::Done
    } else {
        Outcome::Failed
    });
    let estimate = result.map_err(|e| ToolError::from_layer(&e, Subject::Workflow))?;
    Ok(success(to_json(&estimate)?, vec![]))
}

pub async fn execute_workflow(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let workflow: WorkflowId = args.id("workflow_id")?;
    let request = ExecuteWorkflowRequest {
        inputs: inputs(&args)?,
        session_id: None,
        session_name: args.opt_string("session_name", 255)?,
        webhook: None,
    };
    let key = args.idempotency_key()?;
    let admission = ctx
        .upstream
        .admit(&ctx.caller, workspace, CallKind::StartRun)
        .await?
        .with_idempotency_key(key);
    let result = admission
        .client()
        .execute_workflow(workspace, workflow, &request)
        .await;
    match &result {
        Ok(started) => admission.settle(Outcome::RunStarted(started.run_id.to_string())),
        Err(_) => admission.settle(Outcome::Failed),
    }
    let started = result.map_err(|e| ToolError::from_layer(&e, Subject::Workflow))?;
    let mut structured = to_json(&started)?;
    structured["workspace_id"] = json!(workspace.to_string());
    structured["workflow_id"] = json!(workflow.to_string());
    structured["next_step"] = json!(format!(
        "Call get_workflow_run with workspace_id {workspace}, workflow_id {workflow} and run_id {} in {} seconds, and again every poll_interval_seconds until the status is success, failure or cancelled.",
        started.run_id, started.poll_interval_seconds
    ));
    Ok(success(structured, vec![]))
}

pub async fn get_workflow_run(ctx: &ToolContext, args: Args) -> Result<CallToolResult, ToolError> {
    run_call(ctx, &args, false).await
}

pub async fn cancel_workflow_run(
    ctx: &ToolContext,
    args: Args,
) -> Result<CallToolResult, ToolError> {
    run_call(ctx, &args, true).await
}

async fn run_call(
    ctx: &ToolContext,
    args: &Args,
    cancel: bool,
) -> Result<CallToolResult, ToolError> {
    let workspace: WorkspaceId = args.id("workspace_id")?;
    let workflow: WorkflowId = args.id("workflow_id")?;
    let run_id: WorkflowRunId = args.id("run_id")?;
    let kind = if cancel {
        CallKind::CancelRun
    } else {
        CallKind::PollRun
    };
    let admission = ctx.upstream.admit(&ctx.caller, workspace, kind).await?;
    let client = admission.client();
    let result = if cancel {
        client
            .cancel_workflow_run(workspace, workflow, run_id)
            .await
    } else {
        client.get_workflow_run(workspace, workflow, run_id).await
    };
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            admission.settle(Outcome::Failed);
            return Err(ToolError::from_layer(&e, Subject::Run));
        }
    };
    let balance = if run.status.is_terminal() {
        client
            .get_workspace(workspace)
            .await
            .ok()
            .map(|w| (w.name, w.available_creative_units))
    } else {
        None
    };
    admission.settle(if run.status.is_terminal() {
        Outcome::RunEnded(run_id.to_string())
    } else {
        Outcome::Done
    });
    let (summary, blocks) = describe_run(&run, balance);
    let mut structured = to_json(&run)?;
    structured["workspace_id"] = json!(workspace.to_string());
    structured["workflow_id"] = json!(workflow.to_string());
    structured["summary"] = json!(summary);
    Ok(success(structured, blocks))
}

fn describe_run(run: &WorkflowRun, balance: Option<(String, f64)>) -> (String, Vec<ContentBlock>) {
    let label = format!("Workflow run {}", run.run_id);
    if run.status.is_success() {
        let files: Vec<OutputFile<'_>> = run
            .outputs
            .iter()
            .flatten()
            .map(|o| OutputFile {
                url: &o.url,
                content_type: &o.content_type,
                file_size_bytes: o.file_size_bytes,
                width: o.width,
                height: o.height,
                duration_seconds: o.duration_seconds,
            })
            .collect();
        let summary = success_summary(&label, &files, run.actual_price_creative_units, balance);
        let mut blocks = vec![ContentBlock::text(summary.clone())];
        blocks.extend(resource_links(&run.run_id.to_string(), &files));
        return (summary, blocks);
    }
    let balance_text = balance
        .map(|(name, available)| {
            format!(
                " {name} has {} Creative Units available.",
                super::runs::round(available)
            )
        })
        .unwrap_or_default();
    let summary = if run.status.is_terminal() {
        let why = match (&run.error_code, &run.error) {
            (Some(code), Some(error)) => format!(" ({code}): {error}"),
            (Some(code), None) => format!(" ({code})"),
            (None, Some(error)) => format!(": {error}"),
            (None, None) => String::new(),
        };
        let refusals = if run.refusals.is_empty() {
            String::new()
        } else {
            format!(
                " Refused: {}.",
                run.refusals
                    .iter()
                    .map(|r| r.code.as_str().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        format!(
            "{label} ended with status {}{why}.{refusals} Nothing was charged.{balance_text}",
            run.status
        )
    } else {
        format!(
            "{label} is {}. Call get_workflow_run again in {} seconds.",
            run.status,
            run.poll_interval_seconds.unwrap_or(10)
        )
    };
    (summary.clone(), vec![ContentBlock::text(summary)])
}
