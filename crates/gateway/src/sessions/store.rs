//! [`RedisSessionStore`]: rmcp's `SessionStore` on the shared Redis. rmcp stores a session's
//! `initialize` parameters once, after the handshake; a replica that has never seen the
//! session loads them and replays the handshake into a fresh local worker, so the client
//! goes on without re-initializing. The state is the `init` field of the session's hash
//! (`session:<id>`, shared with [`super::redis`], whose use renews its TTL).

use std::time::Duration;

use redis::AsyncCommands;
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};

use crate::redis::{RedisError, SharedRedis};

pub struct RedisSessionStore {
    redis: SharedRedis,
    ttl: Duration,
}

impl RedisSessionStore {
    /// `ttl`: the session idle timeout.
    pub fn new(redis: SharedRedis, ttl: Duration) -> Self {
        Self { redis, ttl }
    }
}

fn boxed(error: redis::RedisError) -> SessionStoreError {
    Box::new(RedisError::from_client(&error))
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let mut conn = self.redis.conn();
        let text: Option<String> = conn
            .hget(self.redis.keys().session(session_id), "init")
            .await
            .map_err(boxed)?;
        match text {
            Some(text) => Ok(Some(serde_json::from_str(&text)?)),
            None => Ok(None),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let text = serde_json::to_string(state)?;
        let key = self.redis.keys().session(session_id);
        let mut conn = self.redis.conn();
        let _: () = redis::pipe()
            .atomic()
            .hset(&key, "init", text)
            .ignore()
            .pexpire(&key, (self.ttl.as_millis() as i64).max(1))
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(boxed)?;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        // The registry's removal (same key) also drops the user's set entry; rmcp calls this
        // on DELETE, where the session middleware removes the binding too.
        let mut conn = self.redis.conn();
        let _: () = conn
            .del(self.redis.keys().session(session_id))
            .await
            .map_err(boxed)?;
        Ok(())
    }
}
