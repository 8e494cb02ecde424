//! The one mapping from a failure to what the MCP client sees.
//!
//! A tool failure is a tool result with `isError: true` whose structured content is
//! `{code, status, message, request_id}` (plus `retry_after_seconds` where it applies, the
//! upstream code when it differs, and validation `details`), and whose text says the same for
//! clients that only show text. Every message tells the agent what to do next.

use std::fmt;
use std::time::Duration;

use layer_api::ErrorCode as LayerCode;
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Map, Value, json};

/// The product's error codes, and the HTTP-like status each carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    InsufficientBalance,
    RateLimited,
    WorkspaceNotFound,
    ModelNotFound,
    WorkflowNotFound,
    RunNotFound,
    InvalidInputs,
    UploadFailed,
    /// A cancel of a run that already finished (Layer's 409).
    RunNotCancellable,
    /// Layer failed (5xx), timed out or could not be reached. Retryable.
    UpstreamUnavailable,
    /// A bug or misconfiguration in the gateway.
    Internal,
}

impl Code {
    pub const ALL: [Code; 13] = [
        Code::Unauthenticated,
        Code::Forbidden,
        Code::InsufficientBalance,
        Code::RateLimited,
        Code::WorkspaceNotFound,
        Code::ModelNotFound,
        Code::WorkflowNotFound,
        Code::RunNotFound,
        Code::InvalidInputs,
        Code::UploadFailed,
        Code::RunNotCancellable,
        Code::UpstreamUnavailable,
        Code::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::InsufficientBalance => "INSUFFICIENT_BALANCE",
            Code::RateLimited => "RATE_LIMITED",
            Code::WorkspaceNotFound => "WORKSPACE_NOT_FOUND",
            Code::ModelNotFound => "MODEL_NOT_FOUND",
            Code::WorkflowNotFound => "WORKFLOW_NOT_FOUND",
            Code::RunNotFound => "RUN_NOT_FOUND",
            Code::InvalidInputs => "INVALID_INPUTS",
            Code::UploadFailed => "UPLOAD_FAILED",
            Code::RunNotCancellable => "RUN_NOT_CANCELLABLE",
            Code::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Code::Internal => "INTERNAL_ERROR",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Code::Unauthenticated => 401,
            Code::Forbidden => 403,
            Code::InsufficientBalance => 402,
            Code::RateLimited => 429,
            Code::WorkspaceNotFound
            | Code::ModelNotFound
            | Code::WorkflowNotFound
            | Code::RunNotFound => 404,
            Code::InvalidInputs | Code::UploadFailed => 400,
            Code::RunNotCancellable => 409,
            Code::UpstreamUnavailable => 503,
            Code::Internal => 500,
        }
    }

    /// What an agent should do about it, for the instructions and the tool descriptions.
    pub fn advice(self) -> &'static str {
        match self {
            Code::Unauthenticated => {
                "the Layer token is missing, expired or revoked: ask the user to reconnect with a valid Personal Access Token; do not retry"
            }
            Code::Forbidden => {
                "the user may not use this workspace or resource (or reached their usage limit): pick another workspace from list_workspaces or ask a workspace admin"
            }
            Code::InsufficientBalance => {
                "the workspace lacks Creative Units for this run: tell the user the price and balance, suggest a smaller batch/resolution/duration or topping up; do not retry as is"
            }
            Code::RateLimited => {
                "at most 5 runs may be in progress per user per workspace: poll or cancel running runs, or wait retry_after_seconds, then retry"
            }
            Code::WorkspaceNotFound => {
                "no such workspace: call list_workspaces and use one of its workspace_id values"
            }
            Code::ModelNotFound => {
                "no such model in this workspace: call list_models (or get_model_recommendations) and use one of its model_id values"
            }
            Code::WorkflowNotFound => {
                "no such workflow in this workspace: call list_workflows and use one of its workflow_id values"
            }
            Code::RunNotFound => {
                "no such run in this workspace: use the inference_id / run_id returned by execute_forge / execute_workflow, with the same workspace_id"
            }
            Code::InvalidInputs => {
                "an argument is malformed or out of range: fix the arguments named in the message (see the tool's input schema) and call again"
            }
            Code::UploadFailed => {
                "the file could not be uploaded: check the URL is public and serves a PNG, JPEG, WebP or MP4 within the size limit, or use request_file_upload_url"
            }
            Code::RunNotCancellable => {
                "the run already finished: call get_forge_run / get_workflow_run to see its outcome"
            }
            Code::UpstreamUnavailable => {
                "Layer is temporarily unavailable: wait retry_after_seconds and call again (for execute_* pass the same idempotency_key so no second run starts)"
            }
            Code::Internal => {
                "an unexpected gateway error: retry once; if it persists, report the request_id"
            }
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a tool call was about, to tell apart Layer 404s that name no code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Workspace,
    Model,
    Workflow,
    Run,
    File,
    Other,
}

/// A failed tool call. Boxed, so `Result<T, ToolError>` stays small; fields are reached
/// through `Deref` (`error.code`, `error.message`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError(Box<ToolErrorData>);

impl std::ops::Deref for ToolError {
    type Target = ToolErrorData;
    fn deref(&self) -> &ToolErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for ToolError {
    fn deref_mut(&mut self) -> &mut ToolErrorData {
        &mut self.0
    }
}

/// What a [`ToolError`] carries.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolErrorData {
    pub code: Code,
    pub message: String,
    /// Layer's request id when Layer answered, else the gateway's.
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
    /// Layer's own code when it differs from `code` (e.g. `CONTENT_POLICY_VIOLATION`).
    pub upstream_code: Option<String>,
    /// Structured detail, e.g. the validation issues.
    pub details: Option<Value>,
}

impl ToolError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self(Box::new(ToolErrorData {
            code,
            message: message.into(),
            request_id: None,
            retry_after: None,
            upstream_code: None,
            details: None,
        }))
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidInputs, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Fills the request id with the gateway's when Layer gave none.
    pub fn or_request_id(mut self, gateway_request_id: Option<&str>) -> Self {
        if self.request_id.is_none() {
            self.request_id = gateway_request_id.map(str::to_owned);
        }
        self
    }

    /// Maps a Layer client error.
    pub fn from_layer(error: &layer_api::Error, subject: Subject) -> Self {
        use layer_api::Error as E;
        let default_retry = Duration::from_secs(5);
        let mut out = match error {
            E::Api(api) => Self::from_api(api, subject),
            E::Timeout { .. } => Self::new(
                Code::UpstreamUnavailable,
                "Layer did not answer in time. Retry in a few seconds; for execute_* pass the same idempotency_key so no second run starts.",
            )
            .with_retry_after(default_retry),
            E::Connect { .. } => Self::new(Code::UpstreamUnavailable, "Layer could not be reached. Retry in a few seconds.")
                .with_retry_after(default_retry),
            E::ConnectionLost { .. } => Self::new(
                Code::UpstreamUnavailable,
                "The connection to Layer broke before it answered; the request may or may not have taken effect. Retry in a few seconds; for execute_* pass the same idempotency_key so no second run starts.",
            )
            .with_retry_after(default_retry),
            E::InvalidResponse { request_id, .. } => {
                let mut e = Self::new(
                    Code::UpstreamUnavailable,
                    "Layer answered with something that is not its API's JSON (a proxy error page?). Retry in a few seconds.",
                )
                .with_retry_after(default_retry);
                e.request_id = request_id.clone();
                e
            }
            E::Upload { status, message, .. } => {
                let mut text = format!("Storage refused the upload (HTTP {})", status.as_u16());
                if let Some(m) = message {
                    text.push_str(": ");
                    text.push_str(m);
                }
                text.push_str(". Request a new upload and try again.");
                Self::new(Code::UploadFailed, text)
            }
            E::InvalidRequest(reason) => Self::invalid(format!("Invalid request: {reason}.")),
            other => {
                tracing::error!(error = %other, "unexpected Layer client error");
                Self::new(Code::Internal, "The gateway could not call Layer. Retry once; if it persists, report the request_id.")
            }
        };
        if out.request_id.is_none() {
            out.request_id = error.request_id().map(str::to_owned);
        }
        out
    }

    fn from_api(api: &layer_api::ApiError, subject: Subject) -> Self {
        let status = api.status().as_u16();
        let upstream = api.code();
        let code = match upstream {
            Some(LayerCode::Unauthenticated) => Code::Unauthenticated,
            Some(LayerCode::Forbidden | LayerCode::UsageLimitExceeded) => Code::Forbidden,
            Some(LayerCode::InsufficientBalance) => Code::InsufficientBalance,
            Some(LayerCode::RateLimited) => Code::RateLimited,
            Some(LayerCode::WorkspaceNotFound) => Code::WorkspaceNotFound,
            Some(LayerCode::ModelNotFound) => Code::ModelNotFound,
            Some(LayerCode::WorkflowNotFound) => Code::WorkflowNotFound,
            Some(LayerCode::RunNotFound) => Code::RunNotFound,
            Some(LayerCode::UploadFailed) => Code::UploadFailed,
            Some(LayerCode::RunNotCancellable) => Code::RunNotCancellable,
            Some(LayerCode::BalanceUnavailable) => Code::UpstreamUnavailable,
            Some(
                LayerCode::InvalidInputs
                | LayerCode::FileNotFound
                | LayerCode::ContentPolicyViolation
                | LayerCode::InputGuardrailViolation
                | LayerCode::PromptIntellectualProperty
                | LayerCode::NoMediaGenerated,
            ) => Code::InvalidInputs,
            _ => match status {
                401 => Code::Unauthenticated,
                402 => Code::InsufficientBalance,
                403 => Code::Forbidden,
                404 => match subject {
                    Subject::Workspace => Code::WorkspaceNotFound,
                    Subject::Model => Code::ModelNotFound,
                    Subject::Workflow => Code::WorkflowNotFound,
                    Subject::Run => Code::RunNotFound,
                    Subject::File | Subject::Other => Code::InvalidInputs,
                },
                409 if upstream == Some(&LayerCode::IdempotencyKeyReused) => Code::InvalidInputs,
                400 | 409 | 413 | 422 => Code::InvalidInputs,
                429 => Code::RateLimited,
                s if s >= 500 => Code::UpstreamUnavailable,
                _ => Code::Internal,
            },
        };
        let mut message = api.message().trim_end_matches('.').to_owned();
        if !api.validation_errors().is_empty() {
            let issues: Vec<String> = api
                .validation_errors()
                .iter()
                .map(|i| i.to_string())
                .collect();
            message = format!("Layer refused the arguments: {}", issues.join("; "));
        }
        let advice = match (code, upstream) {
            (_, Some(LayerCode::FileNotFound)) => {
                "The file_id is not an uploaded file of this workspace: upload it first with upload_file or request_file_upload_url".to_owned()
            }
            (_, Some(LayerCode::IdempotencyKeyReused)) => {
                "This idempotency_key was already used with different arguments: use a new key for a new run".to_owned()
            }
            (Code::InvalidInputs, Some(LayerCode::ContentPolicyViolation | LayerCode::InputGuardrailViolation | LayerCode::PromptIntellectualProperty)) => {
                "The prompt or inputs were refused by a content rule: rephrase the prompt (no protected characters, brands or unsafe content) and try again".to_owned()
            }
            (code, _) => capitalise(code.advice()),
        };
        let mut out = Self::new(code, format!("{message}. {advice}."));
        out.request_id = api.request_id().map(str::to_owned);
        out.retry_after = api.retry_after().or(match code {
            Code::UpstreamUnavailable => Some(Duration::from_secs(5)),
            _ => None,
        });
        out.upstream_code = upstream
            .map(|c| c.to_string())
            .filter(|c| c != code.as_str());
        if !api.validation_errors().is_empty() {
            out.details = serde_json::to_value(api.validation_errors()).ok();
        }
        out
    }

    /// The structured content of the error result.
    pub fn to_structured(&self) -> Value {
        let mut map = Map::new();
        map.insert("code".into(), json!(self.code.as_str()));
        map.insert("status".into(), json!(self.code.status()));
        map.insert("message".into(), json!(self.message));
        map.insert(
            "request_id".into(),
            self.request_id.as_ref().map_or(Value::Null, |id| json!(id)),
        );
        if let Some(after) = self.retry_after {
            map.insert("retry_after_seconds".into(), json!(after.as_secs().max(1)));
        }
        if let Some(upstream) = &self.upstream_code {
            map.insert("upstream_code".into(), json!(upstream));
        }
        if let Some(details) = &self.details {
            map.insert("details".into(), details.clone());
        }
        Value::Object(map)
    }

    /// The MCP tool result.
    pub fn into_result(self) -> CallToolResult {
        let mut text = format!("{} ({}): {}", self.code, self.code.status(), self.message);
        if let Some(after) = self.retry_after {
            text.push_str(&format!(" Retry after {} s.", after.as_secs().max(1)));
        }
        if let Some(id) = &self.request_id {
            text.push_str(&format!(" Request id: {id}."));
        }
        let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
        result.structured_content = Some(self.to_structured());
        result
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The JSON Schema of the error structured content (each tool's output schema admits it).
pub fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Returned with isError: true when the call failed.",
        "properties": {
            "code": {"type": "string", "enum": Code::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
            "status": {"type": "integer"},
            "message": {"type": "string"},
            "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}], "description": "Quote it when reporting a problem."},
            "retry_after_seconds": {"type": "integer", "minimum": 1},
            "upstream_code": {"type": "string"},
            "details": {"type": "array", "items": {"type": "object"}, "description": "The validation issues, when Layer listed them."}
        },
        "required": ["code", "status", "message", "request_id"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_error_shape() {
        let e = ToolError::invalid("workspace_id must be a UUID").or_request_id(Some("gw-1"));
        let result = e.into_result();
        assert_eq!(result.is_error, Some(true));
        let s = result.structured_content.unwrap();
        assert_eq!(s["code"], "INVALID_INPUTS");
        assert_eq!(s["status"], 400);
        assert_eq!(s["request_id"], "gw-1");
        assert!(s.get("retry_after_seconds").is_none());
        let text = result.content[0].as_text().unwrap().text.clone();
        assert!(
            text.starts_with("INVALID_INPUTS (400): workspace_id must be a UUID"),
            "{text}"
        );
    }

    #[test]
    fn every_code_has_a_status_and_advice() {
        for code in Code::ALL {
            assert!(code.status() >= 400);
            assert!(!code.advice().is_empty());
        }
    }

    #[test]
    fn transport_failures_are_retryable_unavailability() {
        let e = ToolError::from_layer(
            &layer_api::Error::Timeout {
                endpoint: "GET /workspaces",
            },
            Subject::Other,
        );
        assert_eq!(e.code, Code::UpstreamUnavailable);
        assert_eq!(e.to_structured()["status"], 503);
        assert!(e.to_structured()["retry_after_seconds"].as_u64().unwrap() >= 1);
    }
}
