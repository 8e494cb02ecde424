//! The tower layers in front of rmcp's MCP service on `/mcp`, outermost first (the ones of
//! a concern with its own room live there):
//!
//! 1. request id + tracing ([`trace`]),
//! 2. CORS for browser clients and the Host / Origin guard ([`guard`]): 403 before anything,
//! 3. authentication (`auth/layer.rs`): 401 / 503 before any MCP handling, on every method,
//! 4. the older transport's stream (`legacy/`),
//! 5. session binding (`sessions/layer.rs`): another user's session is 404, like an unknown
//!    one; [`drain`] ends standalone SSE streams on shutdown,
//! 6. body limit and protocol-version compatibility ([`protocol`]): 413, JSON-RPC parse
//!    errors, the `_meta` / header revision quirk, and 2025-03-26 batches ([`batch`]),
//! 7. `Accept` normalisation ([`accept`]): `*/*` and one-of-two clients get a plain JSON
//!    answer,
//! 8. disconnect detection ([`disconnect`]): a POST whose client went away tells its tool
//!    call, so a call waiting in the caller's queue leaves it.
//!
//! Around all routes, [`keepalive`] reads the small unread body of a refusal sent from the
//! headers alone (or says `Connection: close`), so a pooled connection stays usable.
//!
//! Each is an `axum::middleware::from_fn_with_state` function with its own small state.

pub(crate) mod accept;
pub(crate) mod batch;
pub(crate) mod disconnect;
pub(crate) mod drain;
pub(crate) mod guard;
pub(crate) mod keepalive;
pub(crate) mod protocol;
pub(crate) mod trace;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode};

/// A JSON-RPC error answered at the HTTP level (before rmcp), with an HTTP status.
pub(crate) fn jsonrpc_error(
    status: StatusCode,
    id: Option<serde_json::Value>,
    code: i64,
    message: &str,
) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(serde_json::Value::Null),
        "error": { "code": code, "message": message },
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A plain-text HTTP error (what rmcp itself answers for transport errors).
pub(crate) fn text_error(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(message.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// JSON-RPC error codes used at the HTTP level.
pub(crate) mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const INVALID_PARAMS: i64 = -32602;
}
