//! Reads a POST body once, within the size limit, and makes sure rmcp sees a well-formed
//! JSON-RPC message:
//!
//! - more than the limit: 413 (checked on `Content-Length` first, then while streaming);
//! - not JSON: 400 with JSON-RPC `-32700`; JSON that is not one JSON-RPC message (a batch
//!   outside 2025-03-26, a missing `method`…): 400 with `-32600`. A 2025-03-26 batch is
//!   served message by message (`batch.rs`). rmcp alone would answer 415 with plain text;
//! - the protocol-revision quirk: a hosted client has been seen sending
//!   `_meta["io.modelcontextprotocol/protocolVersion"] = "2026-07-28"` with an older
//!   `MCP-Protocol-Version` header, which rmcp refuses (400, `-32020`). Within a session
//!   (`Mcp-Session-Id` present) we serve the revision the header names and drop the
//!   per-request protocol fields from `_meta`. Without a session the spec's rule stands:
//!   `_meta` and header disagree, so rmcp answers 400 with `-32020` (header mismatch).

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Map, Value};

use super::{codes, jsonrpc_error};

pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
/// The first revision without sessions, where every request carries its protocol in `_meta`.
pub const STATELESS_REVISION: &str = "2026-07-28";
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// The per-request lifecycle fields of the stateless revision (SEP-2575).
const META_LIFECYCLE_KEYS: [&str; 4] = [
    META_PROTOCOL_VERSION,
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/logLevel",
];

/// State of the protocol middleware.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolState {
    pub max_body_bytes: usize,
}

fn too_large(limit: usize) -> Response {
    let mut response = jsonrpc_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
        codes::INVALID_REQUEST,
        &format!("Request body too large: the limit is {limit} bytes"),
    );
    // The rest of the body is left unread, so the connection cannot carry another request:
    // say so, or a client may reuse it and lose its next request.
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

pub async fn normalise(
    State(state): State<ProtocolState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.max_body_bytes as u64) {
        return too_large(state.max_body_bytes);
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, state.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large(state.max_body_bytes);
            }
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::PARSE_ERROR,
                "Could not read the request body",
            );
        }
    };

    let mut value: Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::PARSE_ERROR,
                &format!("Parse error: {error}"),
            );
        }
    };
    // 2025-03-26 requires batches (`batch.rs`); later revisions refuse them below.
    if let Some(messages) = value
        .as_array()
        .filter(|m| !m.is_empty() && super::batch::allowed(&parts.headers))
    {
        return super::batch::serve(parts, messages.clone(), next).await;
    }
    if value.is_array() {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "Invalid Request: JSON-RPC batches are not supported; send one message per POST",
        );
    }
    let id = value.get("id").cloned();
    if let Err(error) = serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            id,
            codes::INVALID_REQUEST,
            &format!("Invalid Request: not a JSON-RPC 2.0 message an MCP server accepts ({error})"),
        );
    }

    let body = if reconcile_revisions(&mut parts.headers, &mut value) {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Bytes::from(value.to_string())
    } else {
        bytes
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Applies the revision quirk (see the module docs). Returns whether the body changed.
fn reconcile_revisions(headers: &mut http::HeaderMap, message: &mut Value) -> bool {
    let Some(header) = headers
        .get(&PROTOCOL_VERSION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return false;
    };
    let Some(method) = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return false;
    };
    let Some(meta) = message
        .get_mut("params")
        .and_then(|p| p.get_mut("_meta"))
        .and_then(Value::as_object_mut)
    else {
        return false;
    };
    let Some(meta_version) = meta
        .get(META_PROTOCOL_VERSION)
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return false;
    };
    // Only an older header with the stateless revision in `_meta`; ISO dates compare as text.
    if meta_version == header
        || header.as_str() >= STATELESS_REVISION
        || meta_version.as_str() < STATELESS_REVISION
    {
        return false;
    }
    let in_session = headers.contains_key(crate::sessions::layer::SESSION_ID);
    if !in_session || method == "server/discover" {
        // Without a session the request can only be a 2026-07-28 one, and its header
        // contradicts it: the spec's header mismatch (400, -32020), which rmcp answers.
        return false;
    }
    tracing::debug!(%header, %meta_version, "serving a request as its header's revision");
    strip_lifecycle(meta);
    if meta.is_empty()
        && let Some(params) = message.get_mut("params").and_then(Value::as_object_mut)
    {
        params.remove("_meta");
    }
    true
}

fn strip_lifecycle(meta: &mut Map<String, Value>) {
    for key in META_LIFECYCLE_KEYS {
        meta.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(version: &str, session: bool) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(PROTOCOL_VERSION, HeaderValue::from_str(version).unwrap());
        if session {
            h.insert(
                crate::sessions::layer::SESSION_ID,
                HeaderValue::from_static("s-1"),
            );
        }
        h
    }

    fn call(meta_version: &str) -> Value {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "list_workspaces", "arguments": {},
            "_meta": {META_PROTOCOL_VERSION: meta_version,
                      "io.modelcontextprotocol/clientCapabilities": {},
                      "io.modelcontextprotocol/clientInfo": {"name": "x", "version": "1"},
                      "progressToken": 7}
        }})
    }

    #[test]
    fn in_a_session_the_header_revision_wins() {
        let mut h = headers("2025-11-25", true);
        let mut m = call("2026-07-28");
        assert!(reconcile_revisions(&mut h, &mut m));
        assert_eq!(m["params"]["_meta"], json!({"progressToken": 7}));
        assert_eq!(h[&PROTOCOL_VERSION], "2025-11-25");
    }

    #[test]
    fn without_a_session_the_mismatch_is_left_to_rmcp() {
        let mut h = headers("2025-06-18", false);
        let mut m = call("2026-07-28");
        let before = m.clone();
        assert!(!reconcile_revisions(&mut h, &mut m));
        assert_eq!(m, before);
        assert_eq!(h[&PROTOCOL_VERSION], "2025-06-18");
        assert!(!h.contains_key("mcp-method") && !h.contains_key("mcp-name"));
    }

    #[test]
    fn consistent_or_other_requests_are_untouched() {
        for (header, meta) in [
            ("2026-07-28", "2026-07-28"),
            ("2025-11-25", "2025-11-25"),
            ("2026-07-28", "2025-11-25"),
        ] {
            let mut h = headers(header, true);
            let mut m = call(meta);
            let before = m.clone();
            assert!(!reconcile_revisions(&mut h, &mut m));
            assert_eq!(m, before);
            assert_eq!(h[&PROTOCOL_VERSION], header);
        }
        let mut h = http::HeaderMap::new();
        let mut m = call("2026-07-28");
        assert!(
            !reconcile_revisions(&mut h, &mut m),
            "no header: rmcp's 400 stands"
        );
    }
}
