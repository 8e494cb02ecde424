//! Workflows (models.py `WorkflowSummary`, `WorkflowInput`, `WorkflowOutput`,
//! `EstimateWorkflowPriceRequest`/`Output`, `ExecuteWorkflowRequest`/`Output`,
//! `GetWorkflowRunOutput`, `GetWorkflowRunStep`, `WorkflowRunAsset`, `RunRefusal`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{PriceEstimate, Timestamp, null_as_default};
use crate::enums::{
    GuardrailCategory, LibraryObjectType, Modality, RefusalCode, WebhookDeliveryStatus,
    WebhookEventType, WorkflowRunStatus,
};
use crate::ids::{
    FileId, GuardrailId, InferenceId, ObjectId, SessionId, WorkflowId, WorkflowRunId,
};
use crate::pagination::{Cursor, PageLimit, Pagination};

/// A workflow as listed, with its typed inputs and outputs.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowSummary {
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// Display name.
    pub name: String,
    /// What it generates.
    pub description: String,
    /// Primary output modality.
    #[serde(default)]
    pub modality: Option<Modality>,
    /// When this version was created.
    pub created_at: Timestamp,
    /// When this version was published.
    #[serde(default)]
    pub published_at: Option<Timestamp>,
    /// What it takes.
    pub inputs: Vec<WorkflowInput>,
    /// What it produces.
    pub outputs: Vec<WorkflowOutput>,
}

/// One input of a workflow.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowInput {
    /// Key in `inputs` when executing.
    pub name: String,
    /// `string`, `number`, `boolean`, `file`, `prompt`…
    #[serde(rename = "type")]
    pub kind: String,
    /// JSON schema of the value.
    #[serde(default)]
    pub value_schema: Option<Map<String, Value>>,
    /// Whether it must be given.
    pub required: bool,
    /// What it controls.
    pub description: String,
    /// Human-readable label.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Value used when not given.
    #[serde(default)]
    pub default: Option<Value>,
}

/// One output of a workflow.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowOutput {
    /// Output name.
    pub name: String,
    /// `file`, `string`…
    #[serde(rename = "type")]
    pub kind: String,
    /// JSON schema of the value.
    #[serde(default)]
    pub value_schema: Option<Map<String, Value>>,
    /// What it contains.
    pub description: String,
    /// Human-readable label.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `GET /workspaces/{ws}/workflows` query.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ListWorkflowsQuery {
    /// Free-text search.
    pub search: Option<String>,
    /// Page size.
    pub limit: Option<PageLimit>,
    /// Where to continue.
    pub cursor: Option<Cursor>,
}

#[derive(Deserialize)]
pub(crate) struct ListWorkflowsOutput {
    pub workflows: Vec<WorkflowSummary>,
    pub pagination: Pagination,
}

/// Body of `POST /workspaces/{ws}/workflows/{wf}/estimate`.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct EstimateWorkflowRequest {
    /// Input values by input name.
    pub inputs: Map<String, Value>,
}

/// Expected count of one output.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct OutputCount {
    /// The output.
    pub output: WorkflowOutput,
    /// How many of it.
    pub count: u32,
}

/// What a workflow run would cost (models.py `EstimateWorkflowPriceOutput`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowEstimate {
    /// Price and balance.
    #[serde(flatten)]
    pub price: PriceEstimate,
    /// Expected number of each output.
    pub output_counts: Vec<OutputCount>,
}

/// Where to deliver a run's terminal event instead of polling (models.py `WebhookInput`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WebhookInput {
    /// Public HTTPS URL.
    pub url: String,
    /// Only these events; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<WebhookEventType>>,
    /// Echoed in every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// Body of `POST /workspaces/{ws}/workflows/{wf}/runs`.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct ExecuteWorkflowRequest {
    /// Input values by input name.
    pub inputs: Map<String, Value>,
    /// An existing session; wins over `session_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// A session by name, created when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// Deliver the outcome to a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookInput>,
}

/// The answer to a workflow execute (models.py `ExecuteWorkflowOutput`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowRunStarted {
    /// Poll this.
    pub run_id: WorkflowRunId,
    /// `pending` or `running`.
    pub status: WorkflowRunStatus,
    /// What was reserved.
    pub estimated_price_creative_units: f64,
    /// Wait this long between polls.
    pub poll_interval_seconds: u64,
    /// When it was created.
    pub created_at: Timestamp,
    /// The session it was added to.
    #[serde(default)]
    pub session_id: Option<SessionId>,
    /// Webhook deliveries this run will make.
    #[serde(default, deserialize_with = "null_as_default")]
    pub expected_events: Vec<WebhookEventType>,
}

/// A workflow run as polled (models.py `GetWorkflowRunOutput`); cancel answers the same.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowRun {
    /// The run.
    pub run_id: WorkflowRunId,
    /// Where it is.
    pub status: WorkflowRunStatus,
    /// While pending or running: wait this long between polls.
    #[serde(default)]
    pub poll_interval_seconds: Option<u64>,
    /// Each step's status.
    #[serde(default, deserialize_with = "null_as_default")]
    pub steps: Vec<WorkflowRunStep>,
    /// What was reserved.
    #[serde(default)]
    pub estimated_price_creative_units: Option<f64>,
    /// On `success`.
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    /// On `success`: what was charged.
    #[serde(default)]
    pub actual_price_creative_units: Option<f64>,
    /// On `success`: the generated objects.
    #[serde(default)]
    pub outputs: Option<Vec<WorkflowRunAsset>>,
    /// On `failure`: what went wrong.
    #[serde(default)]
    pub error: Option<String>,
    /// On `failure`: `BlueprintInsufficientBalanceError`, `BlueprintInvalidRuntimeValueError`…
    #[serde(default)]
    pub error_code: Option<String>,
    /// On `failure`: every refused generation, oldest first.
    #[serde(default, deserialize_with = "null_as_default")]
    pub refusals: Vec<RunRefusal>,
    /// The webhook attached to the run and how delivery went.
    #[serde(default)]
    pub webhook: Option<WebhookStatus>,
}

/// One step of a workflow run.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowRunStep {
    /// Step name.
    pub name: String,
    /// Its status.
    pub status: WorkflowRunStatus,
    /// What went wrong.
    #[serde(default)]
    pub error: Option<String>,
    /// Machine-readable code of a failure.
    #[serde(default)]
    pub error_code: Option<String>,
}

/// A generated object of a workflow run (models.py `WorkflowRunAsset`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WorkflowRunAsset {
    /// The library object.
    pub object_id: ObjectId,
    /// `file`, `asset`…
    pub object_type: LibraryObjectType,
    /// Pass to later runs without re-uploading.
    #[serde(default)]
    pub file_id: Option<FileId>,
    /// Download URL.
    pub url: String,
    /// MIME type.
    pub content_type: String,
    /// Preview URL.
    #[serde(default)]
    pub preview_url: Option<String>,
    /// Pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Pixels.
    #[serde(default)]
    pub height: Option<u32>,
    /// Video length.
    #[serde(default)]
    pub duration_seconds: Option<f64>,
    /// Size.
    #[serde(default)]
    pub file_size_bytes: Option<u64>,
    /// Engine metadata, as sent.
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A generation a workflow run started that was refused (models.py `RunRefusal`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct RunRefusal {
    /// The refused generation.
    pub inference_id: InferenceId,
    /// Why.
    pub code: RefusalCode,
    /// The guardrails that blocked it (only for `INPUT_GUARDRAIL_VIOLATION`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub guardrails: Vec<RefusalGuardrail>,
}

/// A guardrail rule that refused a generation (models.py `RefusalGuardrail`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct RefusalGuardrail {
    /// The rule.
    pub guardrail_id: GuardrailId,
    /// Its name at the time.
    pub name: String,
    /// Its kind.
    pub category: GuardrailCategory,
    /// Why it judged a violation; may be empty.
    #[serde(default)]
    pub reason: String,
}

/// How a run's webhook delivery went (models.py `WebhookStatusView`).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct WebhookStatus {
    /// The callback URL.
    pub url: String,
    /// `pending`, `delivered` or `failed`.
    pub status: WebhookDeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the last attempt was made.
    #[serde(default)]
    pub last_attempt_at: Option<Timestamp>,
    /// The receiver's status on the last attempt.
    #[serde(default)]
    pub last_response_status: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
}
