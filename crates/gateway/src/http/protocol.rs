//! Reads a POST body once, within the size limit, and makes sure rmcp sees a well-formed
//! JSON-RPC message:
//!
//! - more than the limit: 413 (checked on `Content-Length` first, then while streaming);
//! - not JSON: 400 with JSON-RPC `-32700`; JSON that is not one JSON-RPC message (a batch
//!   outside 2025-03-26, a missing `method`, an object repeating a name anywhere, a string
//!   `id` with control characters…): 400 with `-32600` and `id` null. A 2025-03-26 batch is
//!   served message by message (`batch.rs`). rmcp alone would answer 415 with plain text
//!   (or, for a repeated name, serve whichever value its parser kept);
//! - a request whose `params` is not an object, or a standard request (`tools/call`…) without
//!   the params it needs: `-32602` in-band (200) naming what is missing; rmcp would answer
//!   `-32601` (method not found);
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

    let mut value: Value = match parse_unambiguous(&bytes) {
        Ok(value) => value,
        Err(error) if error.classify() == serde_json::error::Category::Data => {
            // Well-formed JSON whose object repeats a name: readers disagree on which value
            // counts (rmcp's typed parse refuses it, a `Value` keeps the last), so it is not
            // one JSON-RPC Request object. Refused whole, wherever the repeat is.
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                None,
                codes::INVALID_REQUEST,
                &format!("Invalid Request: {error}; each name may appear once per object"),
            );
        }
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
    // Log forging: an id is echoed into logs and answers; one with control characters
    // (a newline, an ANSI escape) is refused before anything records it.
    if value
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.chars().any(char::is_control))
    {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            None,
            codes::INVALID_REQUEST,
            "Invalid Request: a string `id` must not contain control characters",
        );
    }
    let id = value.get("id").cloned();
    if let Some(problem) = params_shape_problem(&value) {
        return jsonrpc_error(StatusCode::OK, id, codes::INVALID_PARAMS, &problem);
    }
    let message = match serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
        Ok(message) => message,
        Err(error) => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                id,
                codes::INVALID_REQUEST,
                &format!(
                    "Invalid Request: not a JSON-RPC 2.0 message an MCP server accepts ({error})"
                ),
            );
        }
    };
    if let Some(problem) = params_problem(&message, &value) {
        // In-band (200), as rmcp answers invalid params, so the client's pending request
        // gets the error code.
        return jsonrpc_error(StatusCode::OK, id, codes::INVALID_PARAMS, &problem);
    }

    let body = if reconcile_revisions(&mut parts.headers, &mut value) {
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Bytes::from(value.to_string())
    } else {
        bytes
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// Parses JSON like `serde_json::from_slice::<Value>`, but an object that repeats a name is
/// an error of category `Data` (syntax errors keep theirs).
fn parse_unambiguous(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Unambiguous>(bytes).map(|u| u.0)
}

struct Unambiguous(Value);

impl<'de> serde::Deserialize<'de> for Unambiguous {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UnambiguousVisitor)
            .map(Unambiguous)
    }
}

struct UnambiguousVisitor;

impl<'de> serde::de::Visitor<'de> for UnambiguousVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::Deserialize::deserialize(d).map(|u: Unambiguous| u.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unambiguous(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Unambiguous(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The MCP requests whose `params` object is required, with what it must hold. rmcp reads
/// one without it as a custom request and answers "method not found" (-32601).
const REQUIRED_PARAMS: [(&str, &str); 8] = [
    (
        "initialize",
        "`protocolVersion`, `capabilities` and `clientInfo`",
    ),
    (
        "tools/call",
        "`name` (the tool's name, a string) and optional `arguments`",
    ),
    ("prompts/get", "`name` (a string)"),
    ("resources/read", "`uri` (a string)"),
    ("resources/subscribe", "`uri` (a string)"),
    ("resources/unsubscribe", "`uri` (a string)"),
    ("completion/complete", "`ref` and `argument`"),
    ("logging/setLevel", "`level` (a string)"),
];

/// Why a request's `params` cannot be served (JSON-RPC -32602), if so.
fn params_problem(message: &ClientJsonRpcMessage, value: &Value) -> Option<String> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    let method = value.get("method").and_then(Value::as_str)?;
    let params = value.get("params");
    let (_, needs) = REQUIRED_PARAMS.iter().find(|(m, _)| *m == method)?;
    // Read as the standard request it names: then its params were fine.
    if !matches!(
        request.request,
        rmcp::model::ClientRequest::CustomRequest(_)
    ) {
        return None;
    }
    if params.is_none_or(Value::is_null) {
        return Some(format!(
            "Invalid params: {method} needs `params`, an object with {needs}"
        ));
    }
    Some(format!(
        "Invalid params: the `params` of {method} must hold {needs}"
    ))
}

/// A request (it has an `id` and a `method`) whose `params` is neither an object nor absent:
/// MCP's params are always objects (rmcp would call it "not a JSON-RPC message").
fn params_shape_problem(value: &Value) -> Option<String> {
    value.get("id")?;
    let method = value.get("method").and_then(Value::as_str)?;
    let params = value.get("params");
    if params.is_some_and(|p| !p.is_object() && !p.is_null()) {
        return Some(format!(
            "Invalid params: `params` of {method:?} must be an object, not {}",
            kind_of(params)
        ));
    }
    None
}

fn kind_of(value: Option<&Value>) -> &'static str {
    match value {
        None | Some(Value::Null) => "null",
        Some(Value::Bool(_)) => "a boolean",
        Some(Value::Number(_)) => "a number",
        Some(Value::String(_)) => "a string",
        Some(Value::Array(_)) => "an array",
        Some(Value::Object(_)) => "an object",
    }
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
    tracing::debug!(
        ?header,
        ?meta_version,
        "serving a request as its header's revision"
    );
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
