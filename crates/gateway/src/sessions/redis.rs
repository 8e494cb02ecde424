//! [`RedisSessionRegistry`]: which user owns which MCP session, kept in the shared Redis so
//! every replica checks a session the same way.
//!
//! Keys ([`Keys`](crate::redis::Keys)): the session's hash `session:<id>` holds `user`
//! (beside rmcp's `init`, see [`super::store`]), with the idle timeout as its TTL,
//! renewed on every use; the sorted set `user-sessions:<user>` holds that user's sessions
//! scored by last use (ms), so the per-user cap evicts the least recently used. Each
//! operation is one Lua script, so two replicas binding at once cannot exceed the cap.
//! The scripts touch keys they compute (a user's set from a session's owner): a
//! standalone Redis (or one slot), not a cluster.
//!
//! Each replica also keeps a ledger of the sessions it bound or checked (owner, last use),
//! for two outages: while Redis cannot be asked, a session this replica has checked before
//! goes on with the same owner check (any other gets 503: it cannot be checked); and when
//! Redis comes back empty (its `epoch` key is new), every replica writes its ledger back, so
//! the sessions go on (a replica that never saw one cannot restore it then: 404, and the
//! client re-initializes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::{Ownership, SessionKey, SessionRegistry, StoreUnavailable};
use crate::auth::UserId;
use crate::redis::{RedisError, SharedRedis};

/// Returns the epoch of this Redis's data, creating it (`ARGV[n]`) if missing.
const EPOCH: &str = r#"
local function epoch(prefix, fresh)
  local key = prefix .. 'epoch'
  local e = redis.call('GET', key)
  if not e then
    redis.call('SET', key, fresh)
    e = fresh
  end
  return e
end
"#;

const BIND: &str = r#"
-- KEYS[1] session hash, KEYS[2] the user's set; ARGV: user, session, now, idle ms, cap, prefix, fresh epoch
local e = epoch(ARGV[6], ARGV[7])
redis.call('HSET', KEYS[1], 'user', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local now = tonumber(ARGV[3])
local idle = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - idle))
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('PEXPIRE', KEYS[2], idle)
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
local evicted = {e}
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
-- KEYS[1] session hash; ARGV: now, idle ms, prefix, session, fresh epoch
local e = epoch(ARGV[3], ARGV[5])
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return {e, false} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local set = ARGV[3] .. 'user-sessions:' .. user
redis.call('ZADD', set, ARGV[1], ARGV[4])
redis.call('PEXPIRE', set, ARGV[2])
return {e, user}
"#;

const WRITE_BACK: &str = r#"
-- ARGV: now, idle ms, prefix, then session, user pairs
for i = 4, #ARGV, 2 do
  local key = ARGV[3] .. 'session:' .. ARGV[i]
  if redis.call('HEXISTS', key, 'user') == 0 then
    redis.call('HSET', key, 'user', ARGV[i + 1])
    redis.call('PEXPIRE', key, ARGV[2])
    local set = ARGV[3] .. 'user-sessions:' .. ARGV[i + 1]
    redis.call('ZADD', set, ARGV[1], ARGV[i])
    redis.call('PEXPIRE', set, ARGV[2])
  end
end
return 1
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
    write_back: Script,
    /// Sessions this replica bound or checked: owner and last use.
    ledger: Mutex<HashMap<SessionKey, (UserId, Instant)>>,
    /// The epoch of Redis's data this replica last saw; a new one means Redis lost it.
    epoch: Mutex<Option<String>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new epoch value, used only if Redis has none (it lost its data, or is new).
fn fresh_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
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
            bind: Script::new(&format!("{EPOCH}{BIND}")),
            owner: Script::new(&format!("{EPOCH}{OWNER}")),
            remove: Script::new(REMOVE),
            write_back: Script::new(WRITE_BACK),
            ledger: Mutex::new(HashMap::new()),
            epoch: Mutex::new(None),
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, (UserId, Instant)>> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The owner this replica last confirmed, if not idle since.
    fn remembered(&self, session: &str) -> Option<UserId> {
        let mut ledger = self.ledger();
        let now = Instant::now();
        ledger.retain(|_, (_, used)| now.duration_since(*used) <= self.idle_timeout);
        let (user, used) = ledger.get_mut(session)?;
        *used = now;
        Some(user.clone())
    }

    fn remember(&self, session: SessionKey, user: &UserId) {
        let mut ledger = self.ledger();
        let now = Instant::now();
        if ledger.len() % 1024 == 1023 {
            ledger.retain(|_, (_, used)| now.duration_since(*used) <= self.idle_timeout);
        }
        ledger.insert(session, (user.clone(), now));
    }

    /// Notes the epoch a script saw; when it is new (Redis came back empty), writes this
    /// replica's sessions back first.
    async fn saw_epoch(&self, epoch: &str) -> Result<(), StoreUnavailable> {
        let previous = {
            let mut known = self
                .epoch
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            known.replace(epoch.to_owned())
        };
        match previous {
            Some(previous) if previous != epoch => {
                let entries: Vec<(SessionKey, UserId)> = {
                    let now = Instant::now();
                    self.ledger()
                        .iter()
                        .filter(|(_, (_, used))| now.duration_since(*used) <= self.idle_timeout)
                        .map(|(session, (user, _))| (session.clone(), user.clone()))
                        .collect()
                };
                tracing::warn!(
                    sessions = entries.len(),
                    "the session store lost its data: writing this replica's sessions back"
                );
                let keys = self.redis.keys();
                let mut invocation = self.write_back.prepare_invoke();
                invocation
                    .arg(now_ms())
                    .arg(self.idle_ms())
                    .arg(keys.prefix());
                for (session, user) in &entries {
                    invocation.arg(&**session).arg(user.as_str());
                }
                let mut conn = self.redis.conn();
                let _: i64 = invocation
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn idle_ms(&self) -> u64 {
        (self.idle_timeout.as_millis() as u64).max(1)
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
        let mut reply: Vec<String> = self
            .bind
            .key(keys.session(&session))
            .key(keys.user_sessions(user.as_str()))
            .arg(user.as_str())
            .arg(&*session)
            .arg(now_ms())
            .arg(self.idle_ms())
            .arg(self.max_per_user)
            .arg(keys.prefix())
            .arg(fresh_epoch())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if reply.is_empty() {
            return Err(StoreUnavailable("unexpected answer".to_owned()));
        }
        let epoch = reply.remove(0);
        self.saw_epoch(&epoch).await?;
        self.remember(session, user);
        let mut ledger = self.ledger();
        for evicted in &reply {
            ledger.remove(evicted.as_str());
        }
        Ok(reply.into_iter().map(SessionKey::from).collect())
    }

    async fn owner(&self, session: &str) -> Result<Ownership, StoreUnavailable> {
        let keys = self.redis.keys();
        let mut conn = self.redis.conn();
        let reply: Result<(String, Option<String>), _> = self
            .owner
            .key(keys.session(session))
            .arg(now_ms())
            .arg(self.idle_ms())
            .arg(keys.prefix())
            .arg(session)
            .arg(fresh_epoch())
            .invoke_async(&mut conn)
            .await;
        let (epoch, user) = match reply {
            Ok(reply) => reply,
            Err(error) => {
                // Redis cannot be asked: a session this replica checked before keeps its
                // owner check; any other cannot be checked.
                return match self.remembered(session) {
                    Some(user) => Ok(Ownership::Owner(user)),
                    None => Err(unavailable(error)),
                };
            }
        };
        let previous_epoch = self
            .epoch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        self.saw_epoch(&epoch).await?;
        match user {
            Some(user) => {
                let user = UserId::from_stored(user);
                self.remember(SessionKey::from(session), &user);
                Ok(Ownership::Owner(user))
            }
            None if previous_epoch.is_some_and(|p| p != epoch) => {
                // Written back just now: this replica's own sessions go on.
                Ok(match self.remembered(session) {
                    Some(user) => Ownership::Owner(user),
                    None => Ownership::Unknown,
                })
            }
            None => {
                self.ledger().remove(session);
                Ok(Ownership::Unknown)
            }
        }
    }

    async fn remove(&self, session: &str) {
        self.ledger().remove(session);
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
