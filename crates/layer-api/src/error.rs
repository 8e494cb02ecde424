//! The one error type of this crate.
//!
//! An answer with an error status becomes [`ApiError`]: the Layer code (last path segment of
//! the problem `type`), the status, the human message (`detail`, else `title`), the validation
//! items of a 422, the upstream request id and `Retry-After`. Failures to get an answer at all
//! have their own variants, so a caller can tell "Layer said no" from "Layer was not reached".
//! Nothing here ever holds a bearer token or a signed upload URL.

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire_enum::wire_enum;

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

wire_enum! {
    /// The machine-readable code of a Layer error: the last path segment of a problem's `type`.
    ErrorCode {
        /// 401: missing, unknown, expired or revoked token.
        Unauthenticated = "UNAUTHENTICATED",
        /// 403: the caller may not use this workspace or resource.
        Forbidden = "FORBIDDEN",
        /// 402: not enough Creative Units for the estimate.
        InsufficientBalance = "INSUFFICIENT_BALANCE",
        /// The balance could not be verified; retry later.
        BalanceUnavailable = "BALANCE_UNAVAILABLE",
        /// The member is past their usage limit.
        UsageLimitExceeded = "USAGE_LIMIT_EXCEEDED",
        /// 429: too many concurrent runs (at most 5 per user per workspace).
        RateLimited = "RATE_LIMITED",
        /// 404: no such workspace.
        WorkspaceNotFound = "WORKSPACE_NOT_FOUND",
        /// 404: no such model in the workspace.
        ModelNotFound = "MODEL_NOT_FOUND",
        /// 404: no such workflow in the workspace.
        WorkflowNotFound = "WORKFLOW_NOT_FOUND",
        /// 404: no such inference or workflow run.
        RunNotFound = "RUN_NOT_FOUND",
        /// 404: no such file.
        FileNotFound = "FILE_NOT_FOUND",
        /// 400: malformed parameters or UUIDs.
        InvalidInputs = "INVALID_INPUTS",
        /// 400: an upload could not be accepted.
        UploadFailed = "UPLOAD_FAILED",
        /// The provider's content policy refused the prompt or inputs.
        ContentPolicyViolation = "CONTENT_POLICY_VIOLATION",
        /// A workspace or project guardrail refused the request.
        InputGuardrailViolation = "INPUT_GUARDRAIL_VIOLATION",
        /// The provider refused protected intellectual property.
        PromptIntellectualProperty = "PROMPT_INTELLECTUAL_PROPERTY",
        /// The provider returned no output and no reason.
        NoMediaGenerated = "NO_MEDIA_GENERATED",
        /// 409: the same `Idempotency-Key` was sent before with a different body.
        IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED",
        /// 409: the run already finished and cannot be cancelled.
        RunNotCancellable = "RUN_NOT_CANCELLABLE",
    }
}

/// One segment of a validation error's `loc`: a field name or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LocSegment {
    /// A field name, e.g. `body`, `batch_size`.
    Key(String),
    /// A position in a list.
    Index(i64),
}

impl fmt::Display for LocSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(key) => f.write_str(key),
            Self::Index(index) => write!(f, "{index}"),
        }
    }
}

/// One item of a 422 body's `detail` list (models.py `ValidationError`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationIssue {
    /// Where the problem is, e.g. `["body", "batch_size"]`.
    #[serde(default)]
    pub loc: Vec<LocSegment>,
    /// What is wrong, for people.
    #[serde(default)]
    pub msg: String,
    /// What is wrong, for programs, e.g. `less_than_equal`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The offending value, when the server echoes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Extra facts, e.g. `{"le": 16}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Map<String, Value>>,
}

impl ValidationIssue {
    /// The location as a dotted path, e.g. `body.guidance_files.0.file_id`.
    pub fn location(&self) -> String {
        self.loc
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.loc.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.location(), self.msg)
        }
    }
}

/// Layer answered with an error status.
#[derive(Debug, Clone)]
pub struct ApiError {
    endpoint: &'static str,
    status: StatusCode,
    code: Option<ErrorCode>,
    problem_type: Option<String>,
    title: Option<String>,
    message: String,
    validation: Vec<ValidationIssue>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    instance: Option<String>,
}

impl ApiError {
    /// Reads an error answer: RFC 9457 problem+json, a FastAPI 422 body, or anything else
    /// (an HTML page from a proxy), which keeps only the status.
    pub(crate) fn from_response(
        endpoint: &'static str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Self {
        let mut error = Self {
            endpoint,
            status,
            code: None,
            problem_type: None,
            title: None,
            message: String::new(),
            validation: Vec::new(),
            request_id: header_str(headers, "x-request-id"),
            retry_after: parse_retry_after(headers),
            instance: None,
        };
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            error.problem_type = non_empty_str(map.get("type"));
            error.code = error
                .problem_type
                .as_deref()
                .and_then(|t| t.rsplit('/').next())
                .filter(|code| !code.is_empty() && *code != "about:blank")
                .map(ErrorCode::parse_lenient);
            error.title = non_empty_str(map.get("title"));
            error.instance = non_empty_str(map.get("instance"));
            if error.request_id.is_none() {
                error.request_id = non_empty_str(map.get("request_id"));
            }
            match map.get("detail") {
                Some(Value::String(detail)) if !detail.is_empty() => {
                    error.message = detail.clone();
                }
                Some(Value::Array(items)) => {
                    error.validation = items
                        .iter()
                        .filter_map(|item| serde_json::from_value(item.clone()).ok())
                        .collect();
                }
                _ => {}
            }
            // Some servers name the code outright instead of (or besides) in `type`.
            if error.code.is_none() {
                error.code = non_empty_str(map.get("code")).map(|c| ErrorCode::parse_lenient(&c));
            }
        }
        if error.message.is_empty() {
            error.message = if let Some(title) = &error.title {
                title.clone()
            } else if !error.validation.is_empty() {
                "the request is not valid".to_owned()
            } else {
                format!(
                    "HTTP {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("error")
                )
            };
        }
        error
    }

    /// Which call failed, as a route template such as `GET /workspaces/{workspace_id}`.
    pub fn endpoint(&self) -> &'static str {
        self.endpoint
    }

    /// The HTTP status Layer answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The Layer code, when the body named one (a plain 422 validation body does not).
    pub fn code(&self) -> Option<&ErrorCode> {
        self.code.as_ref()
    }

    /// The problem's `type` URI as sent.
    pub fn problem_type(&self) -> Option<&str> {
        self.problem_type.as_deref()
    }

    /// The problem's `title`.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// What went wrong, for people: `detail`, else `title`, else the status line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The items of a 422 validation body; empty otherwise.
    pub fn validation_errors(&self) -> &[ValidationIssue] {
        &self.validation
    }

    /// Layer's id for the request (`X-Request-Id`, else the body's `request_id`), to quote
    /// to Layer support.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// How long the server asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The problem's `instance`.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// Whether trying the same call again later may succeed: 502, 503, 504, and a 429 that
    /// says when to come back.
    pub fn is_retryable(&self) -> bool {
        match self.status.as_u16() {
            502..=504 => true,
            429 => self.retry_after.is_some(),
            _ => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered {}", self.endpoint, self.status.as_u16())?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)?;
        for (i, issue) in self.validation.iter().enumerate() {
            f.write_str(if i == 0 { " (" } else { "; " })?;
            write!(f, "{issue}")?;
            if i + 1 == self.validation.len() {
                f.write_str(")")?;
            }
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Which step of a storage upload failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStage {
    /// `POST` with `x-goog-resumable: start`, which should answer with a `Location`.
    Start,
    /// `PUT` of the bytes to the session URI.
    Put,
}

impl fmt::Display for UploadStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Start => "starting the resumable upload",
            Self::Put => "sending the bytes",
        })
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Layer answered with an error status.
    #[error(transparent)]
    Api(Box<ApiError>),
    /// No answer within the request timeout.
    #[error("{endpoint} timed out")]
    Timeout {
        /// The call, as a route template.
        endpoint: &'static str,
    },
    /// No connection could be made (DNS, refused, TLS, connect timeout).
    #[error("could not connect to the Layer API for {endpoint}: {source}")]
    Connect {
        /// The call, as a route template.
        endpoint: &'static str,
        /// The underlying failure, URL stripped.
        #[source]
        source: reqwest::Error,
    },
    /// The connection broke before a whole answer arrived. The request may or may not have
    /// taken effect upstream.
    #[error("the connection to the Layer API broke during {endpoint}: {source}")]
    ConnectionLost {
        /// The call, as a route template.
        endpoint: &'static str,
        /// The underlying failure, URL stripped.
        #[source]
        source: reqwest::Error,
    },
    /// [`crate::AuthedClient::wait_for_inference`] (or `wait_for_workflow_run`) gave up
    /// before the run finished. The run goes on upstream; poll it again later.
    #[error("the run was still unfinished when the wait for it ended ({endpoint})")]
    WaitTimedOut {
        /// The poll call, as a route template.
        endpoint: &'static str,
    },
    /// An answer with a success status whose body is not what the API documents (for
    /// example an HTML page from a proxy).
    #[error("{endpoint} answered {status} with a body that is not the documented JSON: {reason}")]
    InvalidResponse {
        /// The call, as a route template.
        endpoint: &'static str,
        /// The status it came with.
        status: StatusCode,
        /// Layer's request id, if the answer carried one.
        request_id: Option<String>,
        /// Why it could not be read (the decoder's message or the content type).
        reason: String,
    },
    /// Cloud storage refused an upload step.
    #[error("storage refused the upload while {stage}: HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Upload {
        /// The step that failed.
        stage: UploadStage,
        /// The status storage answered with.
        status: StatusCode,
        /// Storage's own words, if short and readable.
        message: Option<String>,
    },
    /// The caller asked for something this client will not send (e.g. an empty upload).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The HTTP client could not be built from the configuration.
    #[error("could not build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
}

impl From<ApiError> for Error {
    fn from(error: ApiError) -> Self {
        Self::Api(Box::new(error))
    }
}

impl Error {
    /// The Layer error, if Layer answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            _ => None,
        }
    }

    /// The Layer code (`INSUFFICIENT_BALANCE`, `RATE_LIMITED`…), when Layer sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.api().and_then(ApiError::code)
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api(api) => Some(api.status()),
            Self::InvalidResponse { status, .. } | Self::Upload { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Layer's request id, when the answer carried one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api(api) => api.request_id(),
            Self::InvalidResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// How long Layer asked to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(ApiError::retry_after)
    }

    /// Whether the same call may succeed if tried again later: timeouts, connection failures,
    /// 502/503/504, a 429 with `Retry-After`, and storage answering 5xx. A `POST` is only safe
    /// to repeat with the same `Idempotency-Key`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api(api) => api.is_retryable(),
            Self::Timeout { .. }
            | Self::Connect { .. }
            | Self::ConnectionLost { .. }
            | Self::WaitTimedOut { .. } => true,
            Self::Upload { status, .. } => status.is_server_error(),
            Self::InvalidResponse { .. } | Self::InvalidRequest(_) | Self::Build(_) => false,
        }
    }

    /// Classifies a transport failure. The URL is stripped: an upload URL is a signed
    /// credential, and API URLs add nothing the endpoint template does not say.
    pub(crate) fn transport(endpoint: &'static str, error: reqwest::Error) -> Self {
        let error = error.without_url();
        if error.is_timeout() {
            Self::Timeout { endpoint }
        } else if error.is_connect() {
            Self::Connect {
                endpoint,
                source: error,
            }
        } else {
            Self::ConnectionLost {
                endpoint,
                source: error,
            }
        }
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn non_empty_str(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let raw = header_str(headers, "retry-after")?;
    if let Ok(seconds) = raw.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(&raw).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    /// The error made of an answer to a POST with this status, headers and body.
    fn answer(status: StatusCode, pairs: &[(&'static str, &str)], body: &[u8]) -> ApiError {
        ApiError::from_response("POST /x", status, &headers(pairs), body)
    }

    fn assert_shows(err: &ApiError, text: &str) {
        let shown = err.to_string();
        assert!(shown.contains(text), "{shown}");
    }

    #[test]
    fn problem_json_becomes_a_typed_error() {
        let body = br#"{"type":"https://api.app.layer.ai/problems/INSUFFICIENT_BALANCE","title":"Insufficient balance","status":402,"detail":"Needs 12 Creative Units, 3 available.","request_id":"req-body"}"#;
        let err = answer(
            StatusCode::PAYMENT_REQUIRED,
            &[("x-request-id", "req-header")],
            body,
        );
        assert_eq!(err.code(), Some(&ErrorCode::InsufficientBalance));
        assert_eq!(err.message(), "Needs 12 Creative Units, 3 available.");
        assert_eq!(err.request_id(), Some("req-header"));
        assert!(!err.is_retryable());
        assert_shows(&err, "402 INSUFFICIENT_BALANCE: Needs 12");
    }

    #[test]
    fn title_and_body_request_id_are_fallbacks() {
        let body =
            br#"{"type":"about:blank/RATE_LIMITED","title":"Too many runs","request_id":"req-9"}"#;
        let err = answer(StatusCode::TOO_MANY_REQUESTS, &[("retry-after", "3")], body);
        assert_eq!(err.code(), Some(&ErrorCode::RateLimited));
        assert_eq!(err.message(), "Too many runs");
        assert_eq!(err.request_id(), Some("req-9"));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_retryable());
    }

    #[test]
    fn validation_body_keeps_every_item() {
        let body = br#"{"detail":[{"loc":["body","batch_size"],"msg":"Input should be less than or equal to 16","type":"less_than_equal","input":40,"ctx":{"le":16}},{"loc":["body","guidance_files",0,"file_id"],"msg":"Input should be a valid UUID","type":"uuid_parsing"}]}"#;
        let err = answer(StatusCode::UNPROCESSABLE_ENTITY, &[], body);
        assert_eq!(err.code(), None);
        assert_eq!(err.validation_errors().len(), 2);
        assert_eq!(
            err.validation_errors()[1].location(),
            "body.guidance_files.0.file_id"
        );
        assert_shows(
            &err,
            "body.batch_size: Input should be less than or equal to 16",
        );
    }

    #[test]
    fn html_error_page_keeps_the_status() {
        let err = ApiError::from_response(
            "GET /x",
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            b"<html><body>502 Bad Gateway</body></html>",
        );
        assert_eq!(err.code(), None);
        assert_eq!(err.message(), "HTTP 502 Bad Gateway");
        assert!(err.is_retryable());
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        let h = headers(&[("retry-after", &later.to_rfc2822())]);
        let delay = parse_retry_after(&h).unwrap();
        assert!(delay <= Duration::from_secs(30) && delay >= Duration::from_secs(28));
        assert_eq!(
            parse_retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "soon")])),
            None
        );
    }
}
