//! State shared by every replica through Redis (`redis_url`), so N replicas behind a plain
//! round-robin load balancer are interchangeable:
//!
//! - [`redis`]: the one connection helper (timeouts, no retries inside, key names);
//! - [`session_registry`]: which user owns which MCP session, per-user cap, idle TTL;
//! - [`session_store`]: rmcp's `SessionStore` (a session's `initialize` state, so another
//!   replica restores it);
//! - [`event_store`]: rmcp's `EventStore` (SSE events, so a stream resumes anywhere with
//!   `Last-Event-ID`);
//! - [`credential_cache`]: the accepted-PAT cache.

pub mod credential_cache;
pub mod event_store;
pub mod redis;
pub mod session_registry;
pub mod session_store;

pub use credential_cache::RedisCredentialCache;
pub use event_store::{EventRetention, RedisEventStore};
pub use redis::{RedisError, SharedRedis};
pub use session_registry::RedisSessionRegistry;
pub use session_store::RedisSessionStore;
