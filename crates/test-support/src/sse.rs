//! Reading `text/event-stream` bodies (MCP's streamable HTTP answers and standalone streams).
//!
//! The parsing is the `sse-stream` crate's, not ours: rmcp, which the gateway and its real
//! clients use, reads SSE with it, so it is already in the tree, kept up with rmcp, and handles
//! what hand-written readers tend to skip (events cut across chunks, `\r\n` and `\r` line
//! ends, multi-line `data`, comments, a byte-order mark).

use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::Value;
pub use sse_stream::Sse as Event;

type Events = Pin<Box<dyn Stream<Item = Result<Event, sse_stream::Error>> + Send>>;

/// The events of one response body, in order, as they arrive.
pub struct SseReader {
    events: Events,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> SseReader {
        SseReader {
            events: Box::pin(sse_stream::SseStream::from_bytes_stream(
                response.bytes_stream(),
            )),
        }
    }

    /// The next event; `None` once the body ends. A malformed stream fails the test.
    pub async fn next(&mut self) -> Option<Event> {
        self.events
            .next()
            .await
            .map(|event| event.unwrap_or_else(|e| panic!("malformed event stream: {e}")))
    }

    /// The next event within `timeout`; `None` if the body ended, and a failed test if
    /// nothing came in time.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, self.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {timeout:?}"))
    }

    /// Reads up to the first JSON-RPC response (a message with an `id` and a `result` or an
    /// `error`); the stream may stay open after it. `None` if the body ends first.
    pub async fn json_rpc_response(&mut self) -> Option<Value> {
        while let Some(event) = self.next().await {
            if let Some(message) = json_rpc_response(&event) {
                return Some(message);
            }
        }
        None
    }
}

/// The event's data as a JSON-RPC response, if it is one.
pub fn json_rpc_response(event: &Event) -> Option<Value> {
    let message: Value = serde_json::from_str(event.data.as_deref()?).ok()?;
    let is_response = message.get("id").is_some()
        && (message.get("result").is_some() || message.get("error").is_some());
    is_response.then_some(message)
}

/// The events of a complete body already read as text.
pub fn parse(body: &str) -> Vec<Event> {
    let chunks =
        futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(body.to_owned()))]);
    futures::executor::block_on(
        sse_stream::SseStream::from_bytes_stream(chunks)
            .map(|event| event.unwrap_or_else(|e| panic!("malformed event stream: {e}")))
            .collect(),
    )
}
