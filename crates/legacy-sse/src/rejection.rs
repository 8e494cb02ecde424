//! Every way a request to this transport can fail, and the one HTTP answer for each.
//!
//! The shapes follow the streamable HTTP transport of the same server (rmcp and the
//! gateway's layers): JSON-RPC error objects for problems with the message, rmcp's plain
//! text for an unknown session, so a client sees the same errors on either transport.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;

use crate::directory::DeliveryError;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;

#[derive(Debug)]
pub(crate) enum Rejection {
    /// POST without `?sessionId=`.
    MissingSessionId,
    /// Unknown, ended, or another identity's session.
    SessionNotFound,
    BodyTooLarge(usize),
    BodyUnreadable,
    /// Not JSON.
    ParseError,
    /// JSON, but not a JSON-RPC message (or batch of them) a client may send.
    InvalidMessage {
        id: Option<Value>,
        detail: String,
    },
    /// The process is at its stream limit.
    TooManyStreams,
    ShuttingDown,
    DirectoryUnavailable,
    /// The request carries no identity: authentication is not in front of this transport.
    NoIdentity,
    /// The handler factory failed.
    HandlerUnavailable,
}

impl From<DeliveryError> for Rejection {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::NotFound => Self::SessionNotFound,
            DeliveryError::ShuttingDown => Self::ShuttingDown,
            DeliveryError::Unavailable(_) => Self::DirectoryUnavailable,
        }
    }
}

fn jsonrpc_error(status: StatusCode, id: Option<Value>, code: i64, message: &str) -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": { "code": code, "message": message },
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, message: &'static str) -> Response {
    let mut response = (status, message).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn retry_later(message: &'static str, seconds: u32) -> Response {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::MissingSessionId => jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                INVALID_REQUEST,
                "Bad Request: missing sessionId: POST to the URL of the stream's endpoint event",
            ),
            Self::SessionNotFound => text(StatusCode::NOT_FOUND, "Not Found: Session not found"),
            Self::BodyTooLarge(limit) => {
                let mut response = jsonrpc_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    INVALID_REQUEST,
                    &format!("Request body too large: the limit is {limit} bytes"),
                );
                // The rest of the body is left unread, so the connection cannot carry another
                // request: say so, or a client may reuse it and lose its next request.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
            Self::BodyUnreadable => jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                PARSE_ERROR,
                "Could not read the request body",
            ),
            Self::ParseError => jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                PARSE_ERROR,
                "Parse error: the body is not valid JSON",
            ),
            Self::InvalidMessage { id, detail } => jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                INVALID_REQUEST,
                &format!(
                    "Invalid Request: not a JSON-RPC message an MCP client may send ({detail})"
                ),
            ),
            Self::TooManyStreams => retry_later(
                "Service Unavailable: too many open streams on this server, retry later",
                5,
            ),
            Self::ShuttingDown => retry_later(
                "Service Unavailable: this server is shutting down; reconnect to continue",
                1,
            ),
            Self::DirectoryUnavailable => retry_later(
                "Service Unavailable: sessions cannot be reached right now, retry later",
                1,
            ),
            Self::NoIdentity | Self::HandlerUnavailable => {
                text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }
}
