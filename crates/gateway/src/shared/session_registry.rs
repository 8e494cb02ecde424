//! [`RedisSessionRegistry`]: which user owns which MCP session, kept in the shared Redis so
//! every replica checks a session the same way.
//!
//! Keys ([`Keys`](super::redis::Keys)): the session's hash `session:<id>` holds `user`
//! (beside rmcp's `init`, see [`super::session_store`]), with the idle timeout as its TTL,
//! renewed on every use; the sorted set `user-sessions:<user>` holds that user's sessions
//! scored by last use (ms), so the per-user cap evicts the least recently used. Each
//! operation is one Lua script, so two replicas binding at once cannot exceed the cap.
//! The scripts touch keys they compute (a user's set from a session's owner): a
//! standalone Redis (or one slot), not a cluster.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::redis::{RedisError, SharedRedis};
use crate::auth::UserId;
use crate::sessions::{Ownership, SessionKey, SessionRegistry, StoreUnavailable};

const BIND: &str = r#"
-- KEYS[1] session hash, KEYS[2] the user's set; ARGV: user, session, now, idle ms, cap, prefix
redis.call('HSET', KEYS[1], 'user', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local now = tonumber(ARGV[3])
local idle = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - idle))
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('PEXPIRE', KEYS[2], idle)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
local evicted = {}
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, -1)
  for _, id in ipairs(oldest) do
    if excess <= 0 then break end
    if id ~= ARGV[2] then
      redis.call('ZREM', KEYS[2], id)
      redis.call('DEL', ARGV[6] .. 'session:' .. id)
      table.insert(evicted, id)
      excess = excess - 1
    end
  end
end
return evicted
"#;

const OWNER: &str = r#"
-- KEYS[1] session hash; ARGV: now, idle ms, prefix, session
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local set = ARGV[3] .. 'user-sessions:' .. user
redis.call('ZADD', set, ARGV[1], ARGV[4])
redis.call('PEXPIRE', set, ARGV[2])
return user
"#;

const REMOVE: &str = r#"
-- KEYS[1] session hash; ARGV: prefix, session
local user = redis.call('HGET', KEYS[1], 'user')
redis.call('DEL', KEYS[1])
if user then redis.call('ZREM', ARGV[1] .. 'user-sessions:' .. user, ARGV[2]) end
return 1
"#;

/// Session ownership in Redis.
pub struct RedisSessionRegistry {
    redis: SharedRedis,
    max_per_user: usize,
    idle_timeout: Duration,
    bind: Script,
    owner: Script,
    remove: Script,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unavailable(error: redis::RedisError) -> StoreUnavailable {
    StoreUnavailable(RedisError::from_client(&error).to_string())
}

impl RedisSessionRegistry {
    pub fn new(redis: SharedRedis, max_per_user: usize, idle_timeout: Duration) -> Self {
        Self {
            redis,
            max_per_user: max_per_user.max(1),
            idle_timeout,
            bind: Script::new(BIND),
            owner: Script::new(OWNER),
            remove: Script::new(REMOVE),
        }
    }

    fn idle_ms(&self) -> u64 {
        (self.idle_timeout.as_millis() as u64).max(1)
    }

    /// Open sessions of `user` (tests and metrics).
    pub async fn count_for(&self, user: &UserId) -> Result<usize, StoreUnavailable> {
        let mut conn = self.redis.conn();
        let since = now_ms().saturating_sub(self.idle_ms());
        let count: usize = redis::cmd("ZCOUNT")
            .arg(self.redis.keys().user_sessions(user.as_str()))
            .arg(since)
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(count)
    }
}

#[async_trait::async_trait]
impl SessionRegistry for RedisSessionRegistry {
    async fn bind(
        &self,
        session: SessionKey,
        user: &UserId,
    ) -> Result<Vec<SessionKey>, StoreUnavailable> {
        let keys = self.redis.keys();
        let mut conn = self.redis.conn();
        let evicted: Vec<String> = self
            .bind
            .key(keys.session(&session))
            .key(keys.user_sessions(user.as_str()))
            .arg(user.as_str())
            .arg(&*session)
            .arg(now_ms())
            .arg(self.idle_ms())
            .arg(self.max_per_user)
            .arg(keys.prefix())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(evicted.into_iter().map(SessionKey::from).collect())
    }

    async fn owner(&self, session: &str) -> Result<Ownership, StoreUnavailable> {
        let keys = self.redis.keys();
        let mut conn = self.redis.conn();
        let user: Option<String> = self
            .owner
            .key(keys.session(session))
            .arg(now_ms())
            .arg(self.idle_ms())
            .arg(keys.prefix())
            .arg(session)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match user {
            Some(user) => Ownership::Owner(UserId::from_stored(user)),
            None => Ownership::Unknown,
        })
    }

    async fn remove(&self, session: &str) {
        let keys = self.redis.keys();
        let mut conn = self.redis.conn();
        let result: Result<i64, _> = self
            .remove
            .key(keys.session(session))
            .arg(keys.prefix())
            .arg(session)
            .invoke_async(&mut conn)
            .await;
        if let Err(error) = result {
            // The binding then ends with its TTL.
            tracing::warn!(error = %RedisError::from_client(&error), "could not forget a session in Redis");
        }
    }

    async fn expire_idle(&self) -> Vec<SessionKey> {
        // Redis expires idle bindings itself (TTL); rmcp closes its idle local workers.
        Vec::new()
    }

    fn store_name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), StoreUnavailable> {
        self.redis
            .ping()
            .await
            .map_err(|e| StoreUnavailable(e.to_string()))
    }
}
