//! The one mapping from a failure to what the client sees: RFC 9457 problem+json, or the
//! FastAPI-shaped 422 `{"detail": [...]}` for request validation.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::request_ctx;

/// Prefix of every problem `type`; the code is the last path segment (client.py parses it so).
pub const PROBLEM_TYPE_BASE: &str = "https://api.app.layer.ai/problems/";

/// One FastAPI/pydantic validation item.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ValidationItem {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl ValidationItem {
    pub fn new(loc: Vec<Value>, kind: &str, msg: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
            input: None,
            ctx: None,
        }
    }

    pub fn input(mut self, input: Value) -> Self {
        self.input = Some(input);
        self
    }

    pub fn ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

/// Builds a `loc` from path segments: strings stay strings, digits become indexes.
pub fn loc(parts: &[&str]) -> Vec<Value> {
    parts
        .iter()
        .map(|p| match p.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(*p),
        })
        .collect()
}

/// Every way an API call fails.
#[derive(Debug)]
pub enum ApiError {
    Validation(Vec<ValidationItem>),
    Unauthenticated {
        token_sent: bool,
    },
    Forbidden,
    WorkspaceNotFound,
    ModelNotFound,
    WorkflowNotFound,
    RunNotFound,
    FileNotFound,
    RouteNotFound,
    MethodNotAllowed,
    InsufficientBalance {
        needed: f64,
        available: f64,
    },
    RateLimited {
        retry_after_secs: u64,
        limit: usize,
    },
    IdempotencyKeyReused,
    PayloadTooLarge,
    RunNotCancellable {
        status: String,
    },
    /// Injected by a fault rule.
    Injected {
        status: StatusCode,
    },
    Internal(String),
}

impl ApiError {
    pub fn validation(item: ValidationItem) -> Self {
        Self::Validation(vec![item])
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use ApiError::*;
        match self {
            Validation(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
                "Validation error",
                String::new(),
            ),
            Unauthenticated { .. } => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Unauthenticated",
                "A valid Personal Access Token or OAuth access token is required.".into(),
            ),
            Forbidden => (
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "Forbidden",
                "You are not a member of this workspace.".into(),
            ),
            WorkspaceNotFound => (
                StatusCode::NOT_FOUND,
                "WORKSPACE_NOT_FOUND",
                "Workspace not found",
                "No workspace has this id.".into(),
            ),
            ModelNotFound => (
                StatusCode::NOT_FOUND,
                "MODEL_NOT_FOUND",
                "Model not found",
                "No model with this id is available in this workspace.".into(),
            ),
            WorkflowNotFound => (
                StatusCode::NOT_FOUND,
                "WORKFLOW_NOT_FOUND",
                "Workflow not found",
                "No workflow with this id is available in this workspace.".into(),
            ),
            RunNotFound => (
                StatusCode::NOT_FOUND,
                "RUN_NOT_FOUND",
                "Run not found",
                "No run with this id exists in this workspace.".into(),
            ),
            FileNotFound => (
                StatusCode::NOT_FOUND,
                "FILE_NOT_FOUND",
                "File not found",
                "No file with this id exists in this workspace.".into(),
            ),
            RouteNotFound => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Not found",
                "No such endpoint.".into(),
            ),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed",
                "This endpoint does not accept this method.".into(),
            ),
            InsufficientBalance { needed, available } => (
                StatusCode::PAYMENT_REQUIRED,
                "INSUFFICIENT_BALANCE",
                "Insufficient balance",
                format!(
                    "This run needs an estimated {needed} Creative Units but the workspace has {available} available. Top up and resubmit."
                ),
            ),
            RateLimited {
                retry_after_secs,
                limit,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "Too many concurrent runs",
                format!(
                    "At most {limit} runs may be unfinished at once per user and workspace. Retry in {retry_after_secs} s."
                ),
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "Payload too large",
                "The request body is larger than the API accepts (2 MiB).".into(),
            ),
            IdempotencyKeyReused => (
                StatusCode::CONFLICT,
                "IDEMPOTENCY_KEY_REUSED",
                "Idempotency key reused",
                "This Idempotency-Key was already used with a different request.".into(),
            ),
            RunNotCancellable { status } => (
                StatusCode::CONFLICT,
                "RUN_NOT_CANCELLABLE",
                "Run not cancellable",
                format!("The run is already {status} and can no longer be cancelled."),
            ),
            Injected { status } => (
                *status,
                if status.as_u16() == 503 {
                    "SERVICE_UNAVAILABLE"
                } else {
                    "INTERNAL_ERROR"
                },
                "Injected fault",
                "The simulator was told to fail this request.".into(),
            ),
            Internal(msg) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "Internal error",
                msg.clone(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Validation(items) = &self {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "detail": items })),
            )
                .into_response();
        }
        let (status, code, title, detail) = self.parts();
        let ctx = request_ctx::current();
        let body = json!({
            "type": format!("{PROBLEM_TYPE_BASE}{code}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
            "instance": ctx.path,
            "request_id": ctx.request_id,
        });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unauthenticated { token_sent } => {
                let value = if *token_sent {
                    r#"Bearer realm="layer", error="invalid_token""#
                } else {
                    r#"Bearer realm="layer""#
                };
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
            }
            ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// Fallback for paths no route serves.
pub async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}
