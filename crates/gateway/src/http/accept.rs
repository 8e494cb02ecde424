//! `Accept` negotiation. rmcp answers 406 unless a POST names both `application/json` and
//! `text/event-stream` (and a GET names `text/event-stream`). Real clients send `*/*`, or
//! only one of the two. So:
//!
//! - a POST from a client that did not name `text/event-stream` is passed to rmcp as if it
//!   had, and the SSE answer is collapsed into the single JSON-RPC response it carries,
//!   sent as `application/json` (a client that did not ask for SSE cannot read it);
//! - a GET with `*/*` or no `Accept` asks for the event stream;
//! - a request that accepts none of these gets 406 here.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderValue, Method, StatusCode};

use super::text_error;

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";
const BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");

/// What a request's `Accept` admits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepts {
    /// `application/json`, or a range covering it.
    pub json: bool,
    /// `text/event-stream` named explicitly.
    pub sse: bool,
    /// `*/*` or `text/*`: covers SSE too, but the client may not expect a stream.
    pub sse_by_range: bool,
}

impl Accepts {
    pub fn of(headers: &http::HeaderMap) -> Self {
        let mut accepts = Self::default();
        let mut any_header = false;
        for value in headers.get_all(http::header::ACCEPT) {
            let Ok(value) = value.to_str() else { continue };
            for entry in value.split(',') {
                let mut params = entry.split(';');
                let essence = params.next().unwrap_or("").trim().to_ascii_lowercase();
                if essence.is_empty() {
                    continue;
                }
                any_header = true;
                let refused = params.any(|p| {
                    p.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("q")
                            && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                    })
                });
                if refused {
                    continue;
                }
                match essence.as_str() {
                    JSON | "application/*" => accepts.json = true,
                    SSE => accepts.sse = true,
                    "text/*" => accepts.sse_by_range = true,
                    "*/*" => {
                        accepts.json = true;
                        accepts.sse_by_range = true;
                    }
                    _ => {}
                }
            }
        }
        if !any_header {
            // No Accept at all means anything (RFC 9110 §12.5.1).
            accepts.json = true;
            accepts.sse_by_range = true;
        }
        accepts
    }
}

pub async fn negotiate(mut request: Request, next: Next) -> Response {
    let accepts = Accepts::of(request.headers());
    match *request.method() {
        Method::POST => {
            if !accepts.json && !accepts.sse && !accepts.sse_by_range {
                return text_error(
                    StatusCode::NOT_ACCEPTABLE,
                    "Not Acceptable: accept application/json (or text/event-stream)",
                );
            }
            let collapse = !accepts.sse;
            if !(accepts.json && accepts.sse) {
                request.headers_mut().insert(http::header::ACCEPT, BOTH);
            }
            let response = next.run(request).await;
            if collapse && is_event_stream(&response) {
                return collapse_to_json(response).await;
            }
            response
        }
        Method::GET => {
            if !accepts.sse && accepts.sse_by_range {
                request
                    .headers_mut()
                    .insert(http::header::ACCEPT, HeaderValue::from_static(SSE));
            }
            next.run(request).await
        }
        _ => next.run(request).await,
    }
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(SSE))
}

/// Reads the SSE body until the event carrying the JSON-RPC response (an object with an `id`
/// and a `result` or `error`), and answers with it as `application/json`. Notifications sent
/// before it are dropped: a client that cannot read a stream could not have used them.
async fn collapse_to_json(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let mut stream = body.into_data_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut answer: Option<Bytes> = None;
    'read: while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        buffer.extend_from_slice(&chunk);
        while let Some((event, rest)) = split_event(&buffer) {
            let data = event_data(event);
            buffer = rest.to_vec();
            if let Some(data) = data
                && is_response(&data)
            {
                answer = Some(Bytes::from(data));
                break 'read;
            }
        }
    }
    let Some(answer) = answer else {
        tracing::warn!("the MCP stream ended without a response");
        return text_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error: no response was produced",
        );
    };
    for header in [
        http::header::CONTENT_TYPE,
        http::header::CACHE_CONTROL,
        http::header::CONTENT_LENGTH,
    ] {
        parts.headers.remove(header);
    }
    parts.headers.remove("x-accel-buffering");
    parts
        .headers
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    Response::from_parts(parts, Body::from(answer))
}

/// Splits off the first complete event (terminated by a blank line).
fn split_event(buffer: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut i = 0;
    while i < buffer.len() {
        if buffer[i] == b'\n' {
            // "\n\n" or "\n\r\n"
            if buffer.get(i + 1) == Some(&b'\n') {
                return Some((&buffer[..i], &buffer[i + 2..]));
            }
            if buffer.get(i + 1) == Some(&b'\r') && buffer.get(i + 2) == Some(&b'\n') {
                return Some((&buffer[..i], &buffer[i + 3..]));
            }
        }
        i += 1;
    }
    None
}

/// The `data` of an event (its `data:` lines joined), if any.
fn event_data(event: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(event).ok()?;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let Some(value) = line.strip_prefix("data:") {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
        }
    }
    data.filter(|d| !d.is_empty())
}

fn is_response(data: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(data).is_ok_and(|v| {
        v.get("id").is_some_and(|id| !id.is_null())
            && (v.get("result").is_some() || v.get("error").is_some())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: Option<&str>) -> Accepts {
        let mut h = http::HeaderMap::new();
        if let Some(v) = value {
            h.insert(http::header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        Accepts::of(&h)
    }

    #[test]
    fn classifies_accept_headers() {
        assert_eq!(
            accept(Some("application/json, text/event-stream")),
            Accepts {
                json: true,
                sse: true,
                sse_by_range: false
            }
        );
        assert_eq!(
            accept(Some("*/*")),
            Accepts {
                json: true,
                sse: false,
                sse_by_range: true
            }
        );
        assert_eq!(
            accept(None),
            Accepts {
                json: true,
                sse: false,
                sse_by_range: true
            }
        );
        assert_eq!(
            accept(Some("application/json")),
            Accepts {
                json: true,
                sse: false,
                sse_by_range: false
            }
        );
        assert_eq!(
            accept(Some("text/event-stream")),
            Accepts {
                json: false,
                sse: true,
                sse_by_range: false
            }
        );
        assert_eq!(
            accept(Some("application/json;q=0, text/html")),
            Accepts::default()
        );
    }

    #[test]
    fn parses_sse_events() {
        let stream = b"id: 0\nretry: 3000\ndata:\n\n: keep-alive\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r\n\r\n";
        let mut buffer: &[u8] = stream;
        let mut found = Vec::new();
        while let Some((event, rest)) = split_event(buffer) {
            if let Some(data) = event_data(event) {
                found.push((data.clone(), is_response(&data)));
            }
            buffer = rest;
        }
        assert_eq!(found.len(), 2);
        assert!(!found[0].1);
        assert_eq!(
            found[1],
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}".to_owned(),
                true
            )
        );
    }
}
