//! The gateway's one way to the shared Redis (`redis_url`): a [`SharedRedis`] holds a lazy
//! `ConnectionManager` (made by `redis-conn`, as every Redis user's is) with short timeouts
//! and no retries inside it, so a call during an
//! outage fails at once (callers fail closed) and the next call tries a fresh connection
//! (the gateway recovers by itself when Redis is back). Clone it freely: every clone shares
//! the one multiplexed connection. Other modules that need Redis (the old transport's
//! pub/sub, say) should start from [`SharedRedis::connect`] or [`SharedRedis::client`].
//!
//! [`Keys`] names every key the gateway's shared state uses, under one prefix.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::config::RedisUrl;

/// Longest wait for a connection or an answer from Redis.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why Redis could not be used. Never carries the URL (it may hold a password).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisError {
    #[error("invalid Redis URL ({0})")]
    Url(String),
    #[error("Redis is unreachable ({0})")]
    Unreachable(String),
    #[error("Redis gave an unexpected answer ({0})")]
    Answer(String),
}

impl RedisError {
    /// Maps a client error to a description without secrets: the kind, and whether it was a
    /// timeout or a refused connection.
    pub fn from_client(error: &redis::RedisError) -> Self {
        if error.is_timeout() {
            RedisError::Unreachable("timed out".to_owned())
        } else if error.is_connection_refusal() {
            RedisError::Unreachable("connection refused".to_owned())
        } else if let Some(reason) = redis_conn::tls_failure(error) {
            RedisError::Unreachable(reason.to_owned())
        } else if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
        {
            RedisError::Unreachable(format!("{:?}", error.kind()))
        } else {
            RedisError::Answer(format!("{:?}", error.kind()))
        }
    }
}

impl From<redis::RedisError> for RedisError {
    fn from(error: redis::RedisError) -> Self {
        RedisError::from_client(&error)
    }
}

/// A connection to the shared Redis.
#[derive(Clone)]
pub struct SharedRedis {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRedis")
    }
}

impl SharedRedis {
    /// Prepares the connection (made on first use, inside a Tokio runtime).
    pub fn connect(url: &RedisUrl, timeout: Duration) -> Result<Self, RedisError> {
        Self::connect_with_tls(url, &redis_conn::Tls::default(), timeout)
    }

    /// The same with TLS settings for a `rediss://` URL (`redis_ca_file`).
    pub fn connect_with_tls(
        url: &RedisUrl,
        tls: &redis_conn::Tls,
        timeout: Duration,
    ) -> Result<Self, RedisError> {
        let client = redis_conn::client(url, tls).map_err(|e| RedisError::Url(e.to_string()))?;
        let conn =
            redis_conn::manager(&client, timeout).map_err(|e| RedisError::Url(e.to_string()))?;
        Ok(Self {
            client,
            conn,
            keys: Keys::default(),
        })
    }

    /// A handle on the shared multiplexed connection.
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The client, for what needs its own connection (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// `PING`, for `/readyz`.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn();
        let answer: String = redis::cmd("PING").query_async(&mut conn).await?;
        if answer == "PONG" {
            Ok(())
        } else {
            Err(RedisError::Answer("PING".to_owned()))
        }
    }
}

/// Key names of the gateway's shared state, all under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            prefix: "layer-mcp:".to_owned(),
        }
    }
}

impl Keys {
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// Hash of one MCP session: `user` (its owner) and `init` (rmcp's stored state).
    pub fn session(&self, session: &str) -> String {
        format!("{}session:{session}", self.prefix)
    }
    /// Sorted set of one user's sessions, scored by last use (ms).
    pub fn user_sessions(&self, user: &str) -> String {
        format!("{}user-sessions:{user}", self.prefix)
    }
    /// Redis stream of one SSE stream's events.
    pub fn events(&self, stream: &str) -> String {
        format!("{}events:{stream}", self.prefix)
    }
    /// An accepted credential, under the SHA-256 of its token.
    pub fn credential(&self, hash: &str) -> String {
        format!("{}credential:{hash}", self.prefix)
    }
}
