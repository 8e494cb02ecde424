//! JSON-RPC batches on revision 2025-03-26, which requires servers to accept them (later
//! revisions removed them; rmcp takes one message per POST). A batch is served by passing
//! each of its messages down the rest of the stack as its own POST with the batch's
//! headers and extensions (same caller, same session), and the answers are gathered into
//! one JSON array: one response per request, none for notifications and responses; when
//! nothing is to be answered, 202 as for a lone notification.
//!
//! The revision is the `MCP-Protocol-Version` header's, or 2025-03-26 when there is none
//! (the spec's rule for a server that receives no header). `initialize` may not be batched
//! in that revision, so a batch always belongs to a session.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, StatusCode};
use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};

use super::codes;
use super::protocol::PROTOCOL_VERSION;

/// The one revision with batches.
const BATCH_REVISION: &str = "2025-03-26";
/// JSON-RPC "internal error", for a message whose answer was not JSON-RPC.
const INTERNAL_ERROR: i64 = -32603;

/// Whether a POST with these headers may carry a batch: in a session, on 2025-03-26.
pub fn allowed(headers: &http::HeaderMap) -> bool {
    let revision = match headers.get(&PROTOCOL_VERSION) {
        None => Some(BATCH_REVISION),
        Some(value) => value.to_str().ok(),
    };
    revision == Some(BATCH_REVISION) && headers.contains_key(crate::sessions::layer::SESSION_ID)
}

/// Serves a (non-empty) batch: each message in turn, answers gathered in order.
pub async fn serve(parts: http::request::Parts, messages: Vec<Value>, next: Next) -> Response {
    let mut answers = Vec::new();
    for message in messages {
        let id = message.get("id").cloned();
        let is_request = message.get("method").is_some() && id.is_some();
        if let Err(error) = serde_json::from_value::<ClientJsonRpcMessage>(message.clone()) {
            answers.push(error_object(
                id,
                codes::INVALID_REQUEST,
                &format!(
                    "Invalid Request: not a JSON-RPC 2.0 message an MCP server accepts ({error})"
                ),
            ));
            continue;
        }
        if message.get("method").and_then(Value::as_str) == Some("initialize") {
            answers.push(error_object(
                id,
                codes::INVALID_REQUEST,
                "Invalid Request: initialize must not be part of a JSON-RPC batch",
            ));
            continue;
        }
        let response = next.clone().run(one(&parts, &message)).await;
        if let Some(answer) = answer_of(response, id, is_request).await {
            answers.push(answer);
        }
    }
    if answers.is_empty() {
        return empty(StatusCode::ACCEPTED);
    }
    let mut response = Response::new(Body::from(Value::Array(answers).to_string()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One message of the batch as its own POST, asking for a plain JSON answer.
fn one(parts: &http::request::Parts, message: &Value) -> Request {
    let mut request = Request::new(Body::from(Bytes::from(message.to_string())));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    let headers = request.headers_mut();
    headers.remove(http::header::CONTENT_LENGTH);
    // `http/accept.rs` collapses the answer into one JSON-RPC message for this.
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    request
}

/// The JSON-RPC answer to one message, if it gets one.
async fn answer_of(response: Response, id: Option<Value>, is_request: bool) -> Option<Value> {
    if !is_request {
        return None;
    }
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    match serde_json::from_slice::<Value>(&body) {
        Ok(message) if message.get("jsonrpc").is_some() => Some(message),
        _ => {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            Some(error_object(
                id,
                INTERNAL_ERROR,
                &format!("HTTP {status}: {}", text.trim()),
            ))
        }
    }
}

fn error_object(id: Option<Value>, code: i64, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": code, "message": message},
    })
}

fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
