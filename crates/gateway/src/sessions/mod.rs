//! MCP sessions (`Mcp-Session-Id`) and who may use them. A session never authenticates
//! anyone: every request still carries its bearer, and a session is usable only by the user
//! who opened it. A per-user cap bounds memory: opening one more session than allowed closes
//! that user's least recently used session. Sessions unused for the idle timeout are
//! forgotten (rmcp closes its side with the same timeout).
//!
//! - [`SessionRegistry`]: which user owns which session, with two halves:
//!   [`memory`] (one replica) and [`redis`] (the shared Redis, so any replica can check a
//!   session; a ledger per replica rides out a Redis outage);
//! - [`layer`]: the tower layer on `/mcp` that binds a new session to its opener, refuses
//!   another user's (the same 404 as an unknown one) and sweeps idle sessions;
//! - [`store`]: rmcp's `SessionStore` on Redis (a session's `initialize`, so a replica that
//!   never saw it replays the handshake);
//! - [`events`]: rmcp's `EventStore` on Redis (SSE events, so a stream resumes on any
//!   replica with `Last-Event-ID`).

pub(crate) mod events;
pub(crate) mod layer;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod store;

pub use events::{EventRetention, RedisEventStore};
pub(crate) use memory::MemorySessionRegistry;
pub(crate) use redis::RedisSessionRegistry;
pub(crate) use store::RedisSessionStore;

use crate::auth::UserId;

/// The id rmcp issued in `Mcp-Session-Id`.
pub type SessionKey = std::sync::Arc<str>;

/// Who may use a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Unknown, expired or ended.
    Unknown,
    /// Opened by this user.
    Owner(UserId),
}

/// The registry's store (the shared Redis) cannot be asked: the session can be neither
/// confirmed nor refused, so the request is refused with 503 and may be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the session store is unavailable ({0})")]
pub struct StoreUnavailable(pub String);

/// Session ownership bookkeeping.
#[async_trait::async_trait]
pub trait SessionRegistry: Send + Sync + 'static {
    /// Records that `user` opened `session`. Returns the sessions of that user to close
    /// because the cap was exceeded (least recently used first).
    async fn bind(
        &self,
        session: SessionKey,
        user: &UserId,
    ) -> Result<Vec<SessionKey>, StoreUnavailable>;
    /// Who owns `session`; a known session's last use becomes now.
    async fn owner(&self, session: &str) -> Result<Ownership, StoreUnavailable>;
    /// Forgets a session (DELETE, eviction, or rmcp no longer knows it).
    async fn remove(&self, session: &str);
    /// Sessions idle for longer than the timeout, forgotten by this call, for closing.
    async fn expire_idle(&self) -> Vec<SessionKey>;
    /// Where the bindings are kept, for `/readyz` (`memory`, `redis`).
    fn store_name(&self) -> &'static str {
        "memory"
    }
    /// Whether the store answers, for `/readyz`.
    async fn check(&self) -> Result<(), StoreUnavailable> {
        Ok(())
    }
}
