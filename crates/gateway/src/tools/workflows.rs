//! `list_workflows`, `estimate_workflow_price`, `execute_workflow`, `get_workflow_run`,
//! `cancel_workflow_run`.

use layer_api::{
    EstimateWorkflowRequest, ExecuteWorkflowRequest, ListWorkflowsQuery, WorkflowId, WorkflowRun,
    WorkflowRunId, WorkspaceId,
};
use rmcp::model::ContentBlock;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::args::{self, cursor, idempotency_key, integer, non_blank, page_limit};
use super::runs::{OutputFile, resource_links, success_summary};
use super::schema::{
    array, boolean, integer as integer_schema, nullable, number, open_object,
    pagination_properties, string, uuid,
};
use super::{Behaviour, Tool, ToolContext, ToolResult, page, success, to_json};
use crate::caps::refusal::WORKFLOW;
use crate::errors::Subject;
use crate::upstream::{CallKind, Outcome};
use layer_api::ErrorCode;
use limiter::RunRef;

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
                nullable(integer_schema(
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

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListWorkflows {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// Text to match in names and descriptions.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 200))]
    search: Option<String>,
    /// Workflows per page.
    #[serde(default, deserialize_with = "integer")]
    #[schemars(range(min = 1, max = 100), extend("default" = 20))]
    limit: Option<i64>,
    /// next_cursor from the previous page.
    #[serde(default, deserialize_with = "non_blank")]
    cursor: Option<String>,
}

impl Tool for ListWorkflows {
    const NAME: &'static str = "list_workflows";
    const TITLE: &'static str = "List workflows";
    const DESCRIPTION: &'static str = "Lists the published workflows of a workspace: multi-step pipelines (e.g. a product shot from a product photo and a scene prompt) with their typed inputs (name, type, required, value_schema, default) and outputs. Use the inputs to build execute_workflow's `inputs`. Filter with search; paginated: pass next_cursor back as cursor.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        let mut props = vec![(
            "workflows",
            array("The workflows on this page.", workflow_schema(), None),
        )];
        props.extend(pagination_properties());
        open_object(props, &["workflows", "has_more_results"])
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let workspace = self.workspace_id;
        let query = ListWorkflowsQuery {
            search: self.search,
            limit: page_limit(self.limit)?,
            cursor: cursor(self.cursor)?,
        };
        let listed = ctx
            .read(
                Some(workspace),
                CallKind::Read,
                Subject::Workspace,
                |layer| async move { layer.list_workflows(workspace, &query).await },
            )
            .await?;
        Ok(success(page("workflows", &listed)?, vec![]))
    }
}

// The arguments estimating and executing a workflow share.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowCall {
    /// The workspace, from list_workspaces.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// The workflow, from list_workflows.
    #[schemars(schema_with = "args::uuid")]
    workflow_id: WorkflowId,
    /// Values keyed by the workflow's input names (list_workflows shows each input's type, value_schema and whether it is required). File inputs take a file_id.
    #[schemars(schema_with = "args::any_object")]
    inputs: Map<String, Value>,
}

#[derive(Deserialize, JsonSchema)]
pub struct EstimateWorkflowPrice(WorkflowCall);

impl Tool for EstimateWorkflowPrice {
    const NAME: &'static str = "estimate_workflow_price";
    const TITLE: &'static str = "Estimate a workflow run";
    const DESCRIPTION: &'static str = "Prices a workflow run without running it: estimated_price_creative_units, the available balance, the balance after the run, has_sufficient_creative_units, and output_counts (how many of each output it makes). Pass the inputs you will execute with. Ask the user before spending more than about 20 Creative Units. Costs nothing.";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        open_object(
            vec![
                (
                    "estimated_price_creative_units",
                    number("The run's estimated price.", None, None),
                ),
                (
                    "workspace_balance_creative_units",
                    number("Available balance now.", None, None),
                ),
                (
                    "estimated_remaining_balance_creative_units",
                    number("Available balance after the run.", None, None),
                ),
                (
                    "has_sufficient_creative_units",
                    boolean("Whether the balance covers it."),
                ),
                (
                    "output_counts",
                    array("Outputs the run makes.", json!({"type": "object"}), None),
                ),
            ],
            &[
                "estimated_price_creative_units",
                "has_sufficient_creative_units",
            ],
        )
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let WorkflowCall {
            workspace_id: workspace,
            workflow_id: workflow,
            inputs,
        } = self.0;
        let request = EstimateWorkflowRequest { inputs };
        let estimate = ctx
            .read(
                Some(workspace),
                CallKind::Read,
                Subject::Workflow,
                |layer| async move { layer.estimate_workflow(workspace, workflow, &request).await },
            )
            .await?;
        Ok(success(to_json(&estimate)?, vec![]))
    }
}

#[derive(Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ExecuteWorkflow {
    #[serde(flatten)]
    call: WorkflowCall,
    /// Group the run under a session of this name in the Layer app.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 255))]
    session_name: Option<String>,
    /// Any unique string (e.g. a UUID). Retrying with the same key and inputs returns the run already started instead of starting another.
    #[serde(default, deserialize_with = "non_blank")]
    #[schemars(length(max = 255))]
    idempotency_key: Option<String>,
}

impl Tool for ExecuteWorkflow {
    const NAME: &'static str = "execute_workflow";
    const TITLE: &'static str = "Run a workflow";
    const DESCRIPTION: &'static str = "Starts a workflow run and returns at once with run_id, status pending and poll_interval_seconds; the estimated price is reserved from the workspace balance. Estimate first and ask the user before spending more than about 20 Creative Units. Then poll get_workflow_run every poll_interval_seconds until success, failure or cancelled. At most 5 runs may be in progress per user per workspace. Pass idempotency_key to retry safely.";
    const BEHAVIOUR: Behaviour = Behaviour::CREATES;

    fn output() -> Value {
        open_object(
            vec![
                ("workspace_id", uuid("The workspace.")),
                ("workflow_id", uuid("The workflow.")),
                ("run_id", uuid("Poll it with get_workflow_run.")),
                ("status", string("pending.")),
                (
                    "estimated_price_creative_units",
                    number("Reserved now.", None, None),
                ),
                (
                    "poll_interval_seconds",
                    integer_schema("Wait this long before polling.", 0, None, None),
                ),
                (
                    "created_at",
                    json!({"type": "string", "format": "date-time"}),
                ),
                (
                    "session_id",
                    nullable(uuid("The Layer session it belongs to.")),
                ),
                ("next_step", string("What to do next.")),
            ],
            &[
                "workspace_id",
                "workflow_id",
                "run_id",
                "status",
                "poll_interval_seconds",
            ],
        )
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        let WorkflowCall {
            workspace_id: workspace,
            workflow_id: workflow,
            inputs,
        } = self.call;
        let request = ExecuteWorkflowRequest {
            inputs,
            session_id: None,
            session_name: self.session_name,
            webhook: None,
        };
        let key = idempotency_key(self.idempotency_key)?;
        let started = ctx
            .run(
                workspace,
                key,
                Subject::Workflow,
                |layer| async move { layer.execute_workflow(workspace, workflow, &request).await },
                |started| {
                    RunRef::new(WORKFLOW, started.run_id.to_string())
                        .with_parent(workflow.to_string())
                },
            )
            .await?;
        let mut structured = to_json(&started)?;
        structured["workspace_id"] = json!(workspace.to_string());
        structured["workflow_id"] = json!(workflow.to_string());
        structured["next_step"] = json!(format!(
            "Call get_workflow_run with workspace_id {workspace}, workflow_id {workflow} and run_id {} in {} seconds, and again every poll_interval_seconds until the status is success, failure or cancelled.",
            started.run_id, started.poll_interval_seconds
        ));
        Ok(success(structured, vec![]))
    }
}

// The ids of a workflow run.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunIds {
    /// The workspace the run was started in.
    #[schemars(schema_with = "args::uuid")]
    workspace_id: WorkspaceId,
    /// The workflow.
    #[schemars(schema_with = "args::uuid")]
    workflow_id: WorkflowId,
    /// From execute_workflow.
    #[schemars(schema_with = "args::uuid")]
    run_id: WorkflowRunId,
}

#[derive(Deserialize, JsonSchema)]
pub struct GetWorkflowRun(RunIds);

impl Tool for GetWorkflowRun {
    const NAME: &'static str = "get_workflow_run";
    const TITLE: &'static str = "Check a workflow run";
    const DESCRIPTION: &'static str = "Returns a workflow run's status and steps. While pending or running, wait poll_interval_seconds and call again. On success: the outputs, actual_price_creative_units, a resource link per output and a summary with the balance left: show them to the user. On failure: error, error_code and refusals say why (nothing is charged).";
    const BEHAVIOUR: Behaviour = Behaviour::ReadOnly;

    fn output() -> Value {
        run_schema()
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        run_call(ctx, self.0, false).await
    }
}

#[derive(Deserialize, JsonSchema)]
pub struct CancelWorkflowRun(RunIds);

impl Tool for CancelWorkflowRun {
    const NAME: &'static str = "cancel_workflow_run";
    const TITLE: &'static str = "Cancel a workflow run";
    const DESCRIPTION: &'static str = "Stops a pending or running workflow run; its reserved Creative Units are released and nothing is charged. Outputs not yet made are lost. A run that already finished answers RUN_NOT_CANCELLABLE. Confirm with the user first unless they asked for it.";
    const BEHAVIOUR: Behaviour = Behaviour::Writes {
        destructive: true,
        idempotent: true,
        open_world: false,
    };

    fn output() -> Value {
        run_schema()
    }

    async fn call(self, ctx: &ToolContext) -> ToolResult {
        run_call(ctx, self.0, true).await
    }
}

/// Polls or cancels a run; the answer (and, once the run is over, the balance left) tells the
/// caps whether the run still holds a place.
async fn run_call(ctx: &ToolContext, ids: RunIds, cancel: bool) -> ToolResult {
    let RunIds {
        workspace_id: workspace,
        workflow_id: workflow,
        run_id,
    } = ids;
    let kind = if cancel {
        CallKind::CancelRun
    } else {
        CallKind::PollRun
    };
    let (run, balance) = ctx
        .read_settling(
            Some(workspace),
            kind,
            Subject::Run,
            |layer| async move {
                let run = if cancel {
                    layer.cancel_workflow_run(workspace, workflow, run_id).await
                } else {
                    layer.get_workflow_run(workspace, workflow, run_id).await
                }?;
                let balance = if run.status.is_terminal() {
                    layer
                        .get_workspace(workspace)
                        .await
                        .ok()
                        .map(|w| (w.name, w.available_creative_units))
                } else {
                    None
                };
                Ok((run, balance))
            },
            |result| match result {
                // A successful cancel ends the run even if Layer still reports it stopping.
                Ok(_) if cancel => Outcome::RunEnded(run_id.to_string()),
                Ok((run, _)) => Outcome::RunSeen {
                    run: run_id.to_string(),
                    terminal: run.status.is_terminal(),
                },
                // A run Layer does not know, or (cancel) one already finished, holds no place.
                Err(e) => {
                    let over = match e.status().map(|s| s.as_u16()) {
                        Some(404) => true,
                        Some(409) => cancel && e.code() == Some(&ErrorCode::RunNotCancellable),
                        _ => false,
                    };
                    if over {
                        Outcome::RunEnded(run_id.to_string())
                    } else {
                        Outcome::Failed
                    }
                }
            },
        )
        .await?;
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
