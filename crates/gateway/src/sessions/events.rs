//! [`RedisEventStore`]: rmcp's `EventStore` on the shared Redis, so a client whose SSE stream
//! broke (its replica died or drained) resumes it on any replica with `Last-Event-ID`.
//!
//! Each SSE stream is a Redis stream `events:<stream id>` (`XADD`, capped at
//! [`EventRetention::per_stream`] entries, expiring [`EventRetention::ttl`] after its last
//! event). An event id is `<stream id>/<entry id>`: globally unique, and it names its stream,
//! so a replay reads only that stream, strictly after the entry (`XRANGE (<entry id> +`).
//!
//! Losing Redis never loses an answer: when an event cannot be stored it is still delivered,
//! under an id marked unsaved; resuming after it then replays nothing (a clear, empty stream)
//! instead of failing the call in flight.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::streamable_http_server::session::{
    EventId, EventStore, EventStoreError, EventStream, ServerSseMessage,
};

use crate::redis::{RedisError, SharedRedis};

/// How much of each stream is kept for resumption.
#[derive(Debug, Clone, Copy)]
pub struct EventRetention {
    /// Events kept per stream (the oldest go first).
    pub per_stream: usize,
    /// A stream is forgotten this long after its last event.
    pub ttl: Duration,
}

impl EventRetention {
    /// 256 events per stream, for ten minutes (or the session idle timeout, if shorter):
    /// resumption is for a reconnect within seconds, not an archive.
    pub fn for_idle_timeout(idle: Duration) -> Self {
        Self {
            per_stream: 256,
            ttl: idle.min(Duration::from_secs(600)),
        }
    }
}

const UNSAVED: &str = "unsaved-";

pub struct RedisEventStore {
    redis: SharedRedis,
    retention: EventRetention,
}

impl RedisEventStore {
    pub fn new(redis: SharedRedis, retention: EventRetention) -> Self {
        Self { redis, retention }
    }

    async fn append(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<String, EventStoreError> {
        let key = self.redis.keys().events(stream_id);
        let message = match &event.message {
            Some(message) => serde_json::to_string(message.as_ref())?,
            None => String::new(),
        };
        let retry = event
            .retry
            .map(|r| r.as_millis().to_string())
            .unwrap_or_default();
        let mut conn = self.redis.conn();
        let (entry,): (String,) = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.retention.per_stream)
            .arg("*")
            .arg("m")
            .arg(message)
            .arg("r")
            .arg(retry)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg((self.retention.ttl.as_millis() as u64).max(1))
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| Box::new(RedisError::from_client(&e)) as EventStoreError)?;
        Ok(entry)
    }
}

/// `<stream id>/<entry id>` split at the last `/` (entry ids have none).
fn split_event_id(event_id: &str) -> Option<(&str, &str)> {
    let (stream, entry) = event_id.rsplit_once('/')?;
    (!stream.is_empty() && !entry.is_empty()).then_some((stream, entry))
}

#[derive(Debug, thiserror::Error)]
#[error("invalid event id")]
struct InvalidEventId;

#[async_trait::async_trait]
impl EventStore for RedisEventStore {
    async fn store_event(
        &self,
        stream_id: &str,
        event: &ServerSseMessage,
    ) -> Result<EventId, EventStoreError> {
        match self.append(stream_id, event).await {
            Ok(entry) => Ok(format!("{stream_id}/{entry}")),
            Err(error) => {
                tracing::warn!(%error, "could not store an SSE event; delivered without resumption");
                Ok(format!(
                    "{stream_id}/{UNSAVED}{}",
                    uuid::Uuid::new_v4().simple()
                ))
            }
        }
    }

    async fn replay_events_after(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, EventStoreError> {
        let (stream_id, entry) = split_event_id(last_event_id).ok_or(InvalidEventId)?;
        if entry.starts_with(UNSAVED) {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let key = self.redis.keys().events(stream_id);
        let mut conn = self.redis.conn();
        let reply: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg(format!("({entry}"))
            .arg("+")
            .query_async(&mut conn)
            .await
            .map_err(|e| Box::new(RedisError::from_client(&e)) as EventStoreError)?;
        let mut events = Vec::with_capacity(reply.len());
        for (id, fields) in reply {
            let message = match fields.get("m").filter(|m| !m.is_empty()) {
                Some(text) => Some(Arc::new(serde_json::from_str::<ServerJsonRpcMessage>(
                    text,
                )?)),
                None => None,
            };
            let retry = fields
                .get("r")
                .and_then(|r| r.parse::<u64>().ok())
                .map(Duration::from_millis);
            let mut event = ServerSseMessage::default();
            event.event_id = Some(format!("{stream_id}/{id}"));
            event.message = message;
            event.retry = retry;
            events.push(event);
        }
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_name_their_stream() {
        assert_eq!(
            split_event_id("abc-1:common/1700000000000-0"),
            Some(("abc-1:common", "1700000000000-0"))
        );
        assert_eq!(split_event_id("nope"), None);
        assert_eq!(split_event_id("/1-0"), None);
    }

    #[test]
    fn tool_results_survive_the_round_trip() {
        let text = r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}],"structuredContent":{"a":1},"isError":false}}"#;
        let message: ServerJsonRpcMessage = serde_json::from_str(text).unwrap();
        let again: serde_json::Value = serde_json::to_value(&message).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        let note = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1.0,"total":2.0,"message":"half"}}"#;
        let message: ServerJsonRpcMessage = serde_json::from_str(note).unwrap();
        let again: serde_json::Value = serde_json::to_value(&message).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(note).unwrap()
        );
    }
}
