//! The Lua scripts: every change to a key's counts happens inside one of them, so each is
//! atomic. Time is Redis `TIME` (milliseconds), so replicas with skewed clocks agree.
//!
//! Run keys of a key tag `T` (KEYS[1..3]):
//! - `layer-mcp:cap:{T}:runs`    sorted set, place id -> lease expiry (ms)
//! - `layer-mcp:cap:{T}:holders` hash, place id -> `starting` | `unknown` | RunRef JSON
//! - `layer-mcp:cap:{T}:run_ids` hash, run id -> place id (for `release_run`)
//!
//! Call keys (KEYS[1..4]):
//! - `layer-mcp:cap:{T}:calls`   sorted set, permit id -> lease expiry (ms)
//! - `layer-mcp:cap:{T}:queue`   sorted set, ticket id -> arrival number (FIFO order)
//! - `layer-mcp:cap:{T}:tickets` sorted set, ticket id -> lease expiry (ms)
//! - `layer-mcp:cap:{T}:seq`     counter giving arrival numbers
//!
//! Shared (see `ledger`): `layer-mcp:cap:epoch` (a random id; missing means Redis lost its
//! state) and `layer-mcp:cap:recovering` (set for the recovery window after that).
//!
//! The `{T}` hash tag keeps one key's set in one cluster slot (`reserve` also touches the
//! two shared keys, so the limiter needs a single Redis or a cluster-free deployment). Every
//! script purges expired leases first and leaves the keys with a TTL just past their longest
//! lease, so abandoned keys disappear by themselves.

use std::sync::LazyLock;

pub(crate) struct LuaScript {
    pub(crate) name: &'static str,
    pub(crate) code: String,
    pub(crate) hash: String,
}

impl LuaScript {
    fn new(name: &'static str, prelude: &str, body: &str) -> LuaScript {
        let code = format!("{prelude}\n{body}");
        let hash = redis::Script::new(&code).get_hash().to_owned();
        LuaScript { name, code, hash }
    }
}

const COMMON: &str = r#"
local GRACE = 60000
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

const RUNS: &str = r#"
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  if #dead == 0 then return end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(dead))
  local ids = redis.call('HGETALL', KEYS[3])
  for i = 1, #ids, 2 do
    if not redis.call('ZSCORE', KEYS[1], ids[i + 1]) then
      redis.call('HDEL', KEYS[3], ids[i])
    end
  end
end
local function keep(now)
  local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
    return
  end
  local ttl = math.floor(tonumber(top[2]) - now) + GRACE
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
local function places(now)
  local z = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local out = {}
  for i = 1, #z, 2 do
    out[#out + 1] = z[i]
    out[#out + 1] = math.max(0, math.floor(tonumber(z[i + 1]) - now))
    out[#out + 1] = redis.call('HGET', KEYS[2], z[i]) or 'unknown'
  end
  return out
end
local function remove_place(place)
  redis.call('ZREM', KEYS[1], place)
  redis.call('HDEL', KEYS[2], place)
end
"#;

const CALLS: &str = r#"
local function purge(now)
  local freed = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  if #dead > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    redis.call('ZREM', KEYS[2], unpack(dead))
  end
  return freed + #dead
end
local function keep(now)
  local a = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  local b = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  local top = 0
  if #a > 0 then top = math.max(top, tonumber(a[2])) end
  if #b > 0 then top = math.max(top, tonumber(b[2])) end
  if top == 0 then
    redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
    return
  end
  local ttl = math.floor(top - now) + GRACE
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
local function wake_queue(channel, tag)
  if redis.call('ZCARD', KEYS[2]) > 0 then redis.call('PUBLISH', channel, tag) end
end
"#;

fn runs(name: &'static str, body: &str) -> LuaScript {
    LuaScript::new(name, &format!("{COMMON}{RUNS}"), body)
}

fn calls(name: &'static str, body: &str) -> LuaScript {
    LuaScript::new(name, &format!("{COMMON}{CALLS}"), body)
}

/// Keeps the epoch (see `ledger`). Writes a new one when it is missing; `known` is the epoch
/// the calling replica last wrote its runs under ('' for a replica that never saw one).
/// Returns the epoch and whether the caller is stale (it wrote runs under another epoch:
/// Redis was reset, so the recovery window is opened if nobody has yet).
const ENSURE_EPOCH: &str = r#"
local function ensure_epoch(epoch_key, recovering_key, fresh, window, ttl, known)
  local epoch = redis.call('GET', epoch_key)
  if not epoch then
    epoch = fresh
    redis.call('SET', epoch_key, epoch, 'PX', ttl)
  else
    redis.call('PEXPIRE', epoch_key, ttl)
  end
  local stale = known ~= '' and epoch ~= known
  if stale then redis.call('SET', recovering_key, '1', 'PX', window, 'NX') end
  return epoch, stale
end
"#;

/// KEYS: epoch, recovering. ARGV: new epoch, window ms, epoch ttl ms, known epoch.
/// Returns the epoch.
pub(crate) static EPOCH: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "epoch",
        ENSURE_EPOCH,
        "local epoch = ensure_epoch(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\nreturn epoch",
    )
});

/// KEYS[4..5]: epoch, recovering. ARGV: place, limit, lease ms, new epoch, window ms, epoch
/// ttl ms, known epoch. Returns {1} (reserved), {0, place, ms left, holder, ...} (full) or
/// {2} (Redis lost its state and the replicas are still writing their runs back: refuse).
pub(crate) static RESERVE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "reserve",
        &format!("{COMMON}{RUNS}{ENSURE_EPOCH}"),
        r#"
local _, stale = ensure_epoch(KEYS[4], KEYS[5], ARGV[4], ARGV[5], ARGV[6], ARGV[7])
if stale or redis.call('EXISTS', KEYS[5]) == 1 then return {2} end
local now = now_ms()
purge(now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local out = places(now)
  table.insert(out, 1, 0)
  return out
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], 'starting')
keep(now)
return {1}
"#,
    )
});

/// ARGV: place, lease ms. Extends a reservation that is still undecided; re-adds one that
/// was lost (e.g. Redis restarted), because the caller may be starting a run right now and
/// over-counting is the safe side. Never touches a decided place. Returns 1 if renewed.
pub(crate) static RENEW_RESERVATION: LazyLock<LuaScript> = LazyLock::new(|| {
    runs(
        "renew_reservation",
        r#"
local now = now_ms()
purge(now)
local holder = redis.call('HGET', KEYS[2], ARGV[1])
if holder and holder ~= 'starting' then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], 'starting')
keep(now)
return 1
"#,
    )
});

/// ARGV: place, run id ('' when unknown), holder, lease ms. Writes the place whether or not
/// the reservation is still there: the run exists, so it must be counted. One run holds one
/// place: committing the same run id again moves it.
pub(crate) static COMMIT: LazyLock<LuaScript> = LazyLock::new(|| {
    runs(
        "commit",
        r#"
local now = now_ms()
purge(now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
if ARGV[2] ~= '' then
  local old = redis.call('HGET', KEYS[3], ARGV[2])
  if old and old ~= ARGV[1] then remove_place(old) end
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
end
keep(now)
return 1
"#,
    )
});

/// ARGV: place. Frees a reservation whose run never started.
pub(crate) static CANCEL: LazyLock<LuaScript> = LazyLock::new(|| {
    runs(
        "cancel",
        r#"
local now = now_ms()
purge(now)
local holder = redis.call('HGET', KEYS[2], ARGV[1])
local n = 0
if holder == 'starting' then
  remove_place(ARGV[1])
  n = 1
end
keep(now)
return n
"#,
    )
});

/// ARGV: run id. Idempotent. Returns 1 if the run held a place.
pub(crate) static RELEASE_RUN: LazyLock<LuaScript> = LazyLock::new(|| {
    runs(
        "release_run",
        r#"
local now = now_ms()
purge(now)
local place = redis.call('HGET', KEYS[3], ARGV[1])
local n = 0
if place then
  remove_place(place)
  redis.call('HDEL', KEYS[3], ARGV[1])
  n = 1
end
keep(now)
return n
"#,
    )
});

/// ARGV: run id, lease ms. Returns 1 if the run held a place (now extended).
pub(crate) static TOUCH_RUN: LazyLock<LuaScript> = LazyLock::new(|| {
    runs(
        "touch_run",
        r#"
local now = now_ms()
purge(now)
local place = redis.call('HGET', KEYS[3], ARGV[1])
local n = 0
if place and redis.call('ZSCORE', KEYS[1], place) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), place)
  n = 1
end
keep(now)
return n
"#,
    )
});

/// No ARGV. Returns {place, ms left, holder, ...}.
pub(crate) static LIST_RUNS: LazyLock<LuaScript> = LazyLock::new(|| {
    runs(
        "list_runs",
        r#"
local now = now_ms()
purge(now)
keep(now)
return places(now)
"#,
    )
});

/// ARGV: id, limit, call lease ms, ticket lease ms, channel, tag.
/// Returns {1} (admitted: the id now holds a call place) or {0} (waiting; the ticket is
/// queued and its lease renewed). A ticket is admitted only while it is within the free
/// places counted from the front of the queue, so waiters enter in arrival order on every
/// replica; a newcomer joins the queue when anyone is waiting, even if a place is free.
pub(crate) static ACQUIRE_CALL: LazyLock<LuaScript> = LazyLock::new(|| {
    calls(
        "acquire_call",
        r#"
local now = now_ms()
local purged = purge(now)
local id = ARGV[1]
if redis.call('ZSCORE', KEYS[1], id) then return {1} end
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], id)
if not rank then
  if free > 0 and redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
    keep(now)
    return {1}
  end
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), id)
  rank = redis.call('ZCARD', KEYS[2]) - 1
end
if rank < free then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
  -- More places may be free (several freed at once): let the next waiters look.
  if free > 1 then wake_queue(ARGV[5], ARGV[6]) end
  keep(now)
  return {1}
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), id)
-- Expired leases freed places that someone nearer the front may take.
if purged > 0 then wake_queue(ARGV[5], ARGV[6]) end
keep(now)
return {0}
"#,
    )
});

/// ARGV: id, lease ms. Extends a call place; re-adds it if lost (the call is still running,
/// so it must be counted). Returns 1.
pub(crate) static RENEW_CALL: LazyLock<LuaScript> = LazyLock::new(|| {
    calls(
        "renew_call",
        r#"
local now = now_ms()
purge(now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
keep(now)
return 1
"#,
    )
});

/// ARGV: id, channel, tag. Frees a call place or takes a ticket out of the queue (the same
/// id is first a ticket, then a permit), and wakes the queue. Idempotent.
pub(crate) static RELEASE_CALL: LazyLock<LuaScript> = LazyLock::new(|| {
    calls(
        "release_call",
        r#"
local now = now_ms()
local n = purge(now)
n = n + redis.call('ZREM', KEYS[1], ARGV[1]) + redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if n > 0 then wake_queue(ARGV[2], ARGV[3]) end
keep(now)
return n
"#,
    )
});
