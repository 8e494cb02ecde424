//! The Redis store: every gateway replica sharing one Redis sees the same OAuth state.
//!
//! Keys live under [`PREFIX`]. Short-lived data carries its own expiry (pending
//! authorizations, upstream logins, codes and their spent tombstones, refresh tokens,
//! leases, revoked grants), so [`Store::purge`] only has the unused clients to remove.
//! Every operation that must happen once is one Lua script (or `GETDEL`), so two replicas
//! racing on the same code or token see one winner.
//!
//! Scripts build some key names from the prefix (a grant's refresh tokens, a client's
//! grants), so this needs one Redis (or a primary with replicas), not Redis Cluster.
//! Redis 7.0 or newer (`PEXPIREAT … GT`).
//!
//! Any Redis fault or timeout becomes [`StoreError::Backend`] with a message that names the
//! kind of failure only (never the URL). The connection manager makes no retries of its own:
//! a call during an outage fails within [`TIMEOUT`] and the next call connects afresh, so
//! the store recovers by itself when Redis is back.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{RedisError, Script, Value};

use super::{PurgePolicy, Store, StoreError};
use crate::model::{
    ClientId, ClientRecord, CodeRecord, GrantId, GrantRecord, PendingAuthorization, Purged,
    RefreshRecord, RotateOutcome, SealedUpstream, SigningKeyRecord, Subject, TakeCode, UnixMillis,
    UpstreamLogin,
};

/// Where every key of this store starts.
pub const PREFIX: &str = "layer-mcp:oauth:";

/// How long one Redis round trip (or a connection attempt) may take.
pub const TIMEOUT: Duration = Duration::from_secs(1);

/// How long revoked grants and spent codes are kept, so a late replay is still recognised
/// (the SQLite store's purge uses the same day).
const TOMBSTONE_MS: i64 = 24 * 3600 * 1000;

/// Clients looked at per purge, so one purge stays short however many there are.
const PURGE_CLIENTS_MAX: usize = 2000;
const PURGE_PAGE: usize = 200;

/// The Redis store. Cheap to clone.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No URL: it may hold a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_error(e: &RedisError) -> StoreError {
    StoreError::Backend(redis_conn::describe(e))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Backend(format!("unreadable {what} in redis"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| corrupt(what))
}

/// Field → value of an `HGETALL` (a flat array in RESP2, a map in RESP3).
fn fields(value: Value) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut put = |k: Value, v: Value| {
        if let (Some(k), Some(v)) = (bytes(k), bytes(v)) {
            out.insert(String::from_utf8_lossy(&k).into_owned(), v);
        }
    };
    match value {
        Value::Array(items) => {
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                put(k, v);
            }
        }
        Value::Map(pairs) => {
            for (k, v) in pairs {
                put(k, v);
            }
        }
        _ => {}
    }
    out
}

fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::Okay => Some(b"OK".to_vec()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

fn text_field(f: &HashMap<String, Vec<u8>>, name: &str, what: &str) -> Result<String, StoreError> {
    f.get(name)
        .and_then(|v| String::from_utf8(v.clone()).ok())
        .ok_or_else(|| corrupt(what))
}

/// A script's answer: an array whose first item is a status number, then the rest.
fn status_and_rest(
    answer: Value,
    what: &str,
) -> Result<(Option<i64>, std::vec::IntoIter<Value>), StoreError> {
    let Value::Array(items) = answer else {
        return Err(corrupt(what));
    };
    let mut it = items.into_iter();
    let status = it.next().as_ref().and_then(int);
    Ok((status, it))
}

/// The next item of a script's answer, read as a grant id.
fn next_grant_id(it: &mut impl Iterator<Item = Value>, what: &str) -> Result<GrantId, StoreError> {
    let raw = it.next().and_then(bytes).ok_or_else(|| corrupt(what))?;
    Ok(GrantId::new(String::from_utf8_lossy(&raw).into_owned()))
}

fn int_field(f: &HashMap<String, Vec<u8>>, name: &str, what: &str) -> Result<i64, StoreError> {
    text_field(f, name, what)?
        .parse()
        .map_err(|_| corrupt(what))
}

fn opt_int_field(
    f: &HashMap<String, Vec<u8>>,
    name: &str,
    what: &str,
) -> Result<Option<i64>, StoreError> {
    match f.get(name) {
        None => Ok(None),
        Some(_) => int_field(f, name, what).map(Some),
    }
}

fn grant_from(id: &GrantId, f: &HashMap<String, Vec<u8>>) -> Result<GrantRecord, StoreError> {
    const W: &str = "grant";
    Ok(GrantRecord {
        id: id.clone(),
        subject: Subject::new(text_field(f, "subject", W)?),
        client_id: ClientId::new(text_field(f, "client_id", W)?),
        scope: text_field(f, "scope", W)?,
        resource: text_field(f, "resource", W)?,
        created_at: int_field(f, "created_at", W)?,
        revoked_at: opt_int_field(f, "revoked_at", W)?,
        upstream: SealedUpstream {
            sealed: f.get("sealed").cloned().ok_or_else(|| corrupt(W))?,
            access_expires_at: int_field(f, "access_expires_at", W)?,
            version: int_field(f, "version", W)?,
        },
    })
}

/// Lua shared by the scripts that revoke a grant: marks it revoked (kept a day as a
/// tombstone) and deletes its refresh tokens. Returns 1 if it was live.
const REVOKE_FN: &str = r#"
local function revoke(prefix, grant_id, now, tomb_at)
  local g = prefix .. 'grant:' .. grant_id
  local changed = 0
  if redis.call('EXISTS', g) == 1 and redis.call('HEXISTS', g, 'revoked_at') == 0 then
    redis.call('HSET', g, 'revoked_at', now)
    redis.call('PEXPIREAT', g, tomb_at)
    changed = 1
  end
  local fam = prefix .. 'grant-refresh:' .. grant_id
  for _, h in ipairs(redis.call('SMEMBERS', fam)) do
    redis.call('DEL', prefix .. 'refresh:' .. h)
  end
  redis.call('DEL', fam)
  return changed
end
-- Pushes a key's expiry out to `at` (never earlier); a key without one gets it.
local function extend(key, at)
  if redis.call('PTTL', key) == -1 then
    redis.call('PEXPIREAT', key, at)
  else
    redis.call('PEXPIREAT', key, at, 'GT')
  end
end
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{REVOKE_FN}\n{body}"))
}

/// KEYS: grant, client's grants. ARGV: prefix, grant id, keep-until, field/value pairs…
static CREATE_GRANT: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('grant exists') end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
-- Drop a few grants that are gone from the client's index, so it does not grow forever.
for _, old in ipairs(redis.call('SRANDMEMBER', KEYS[2], 3)) do
  if redis.call('EXISTS', ARGV[1] .. 'grant:' .. old) == 0 then redis.call('SREM', KEYS[2], old) end
end
redis.call('SADD', KEYS[2], ARGV[2])
extend(KEYS[2], ARGV[3])
return 1
"#,
    )
});

/// KEYS: grant, its refresh family. ARGV: prefix, grant id, now, tombstone-until.
static REVOKE_GRANT: LazyLock<Script> =
    LazyLock::new(|| script("return revoke(ARGV[1], ARGV[2], ARGV[3], ARGV[4])"));

/// KEYS: grant. ARGV: expected version, sealed, access expiry, new version.
static SWAP_UPSTREAM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'revoked_at') == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'sealed', ARGV[2], 'access_expires_at', ARGV[3], 'version', ARGV[4])
return 1
"#,
    )
});

/// KEYS: lease. ARGV: holder, ttl ms.
static LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#,
    )
});

/// KEYS: lease. ARGV: holder.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"#,
    )
});

/// KEYS: code, its grant. ARGV: grant id, data, expires_at, keep-until.
static PUT_CODE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('code exists') end
redis.call('HSET', KEYS[1], 'grant_id', ARGV[1], 'data', ARGV[2], 'expires_at', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
if redis.call('EXISTS', KEYS[2]) == 1 then extend(KEYS[2], ARGV[4]) end
return 1
"#,
    )
});

/// KEYS: code. ARGV: prefix, now, tombstone-until.
/// Returns {0} not found, {1, data, expires_at} first use, {2, grant id} replay (revoked).
static TAKE_CODE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r#"
local c = redis.call('HMGET', KEYS[1], 'grant_id', 'data', 'expires_at', 'used_at')
if not c[1] then return {0} end
if c[4] then
  revoke(ARGV[1], c[1], ARGV[2], ARGV[3])
  return {2, c[1]}
end
redis.call('HSET', KEYS[1], 'used_at', ARGV[2])
return {1, c[2], c[3]}
"#,
    )
});

/// Stores one refresh token, in its grant's family; the grant and the family are kept at
/// least as long as the token. Used by PUT_REFRESH and ROTATE.
const STORE_REFRESH_FN: &str = r#"
local function store_refresh(prefix, hash, grant_id, client_id, issued_at, expires_at, rotated_at, keep_until)
  local k = prefix .. 'refresh:' .. hash
  if redis.call('EXISTS', k) == 1 then return redis.error_reply('refresh token exists') end
  redis.call('HSET', k, 'grant_id', grant_id, 'client_id', client_id,
    'issued_at', issued_at, 'expires_at', expires_at)
  if rotated_at ~= '' then redis.call('HSET', k, 'rotated_at', rotated_at) end
  redis.call('PEXPIREAT', k, expires_at)
  local fam = prefix .. 'grant-refresh:' .. grant_id
  redis.call('SADD', fam, hash)
  extend(fam, expires_at)
  local g = prefix .. 'grant:' .. grant_id
  if redis.call('EXISTS', g) == 1 and redis.call('HEXISTS', g, 'revoked_at') == 0 then
    extend(g, keep_until)
  end
end
"#;

/// ARGV: prefix, hash, grant id, client id, issued_at, expires_at, rotated_at or '',
/// keep-until.
static PUT_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    script(&format!(
        "{STORE_REFRESH_FN}\n{}",
        r#"
local err = store_refresh(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
if err then return err end
return 1
"#
    ))
});

/// KEYS: the old token. ARGV: prefix, client id, new hash, issued_at, expires_at, now,
/// grace ms, tombstone-until, keep-until.
/// Returns {0} invalid, {1, grant id, grant fields} rotated, {2, …} within grace,
/// {3, grant id} reused after the grace window (grant revoked).
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    script(&format!(
        "{STORE_REFRESH_FN}\n{}",
        r#"
local o = redis.call('HMGET', KEYS[1], 'grant_id', 'client_id', 'expires_at', 'rotated_at')
if not o[1] then return {0} end
local now = tonumber(ARGV[6])
if o[2] ~= ARGV[2] or tonumber(o[3]) <= now then return {0} end
local g = ARGV[1] .. 'grant:' .. o[1]
if redis.call('EXISTS', g) == 0 or redis.call('HEXISTS', g, 'revoked_at') == 1 then return {0} end
local status
if not o[4] then
  status = 1
elseif now - tonumber(o[4]) <= tonumber(ARGV[7]) then
  status = 2
else
  revoke(ARGV[1], o[1], ARGV[6], ARGV[8])
  return {3, o[1]}
end
local err = store_refresh(ARGV[1], ARGV[3], o[1], o[2], ARGV[4], ARGV[5], '', ARGV[9])
if err then return err end
if status == 1 then redis.call('HSET', KEYS[1], 'rotated_at', ARGV[6]) end
return {status, o[1], redis.call('HGETALL', g)}
"#
    ))
});

/// KEYS: client, clients-by-use index. ARGV: client id, now.
static TOUCH_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], 'last_used')
if not cur then return 0 end
if tonumber(ARGV[2]) > tonumber(cur) then
  redis.call('HSET', KEYS[1], 'last_used', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return 1
"#,
    )
});

/// KEYS: client, clients-by-use index, client's grants. ARGV: client id, unused-since,
/// prefix. Deletes the client if unused since then and without a live grant.
static PURGE_CLIENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local lu = redis.call('HGET', KEYS[1], 'last_used')
if lu and tonumber(lu) > tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], lu, ARGV[1])
  return 0
end
for _, gid in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local g = ARGV[3] .. 'grant:' .. gid
  if redis.call('EXISTS', g) == 1 then
    if redis.call('HEXISTS', g, 'revoked_at') == 0 then return 0 end
  else
    redis.call('SREM', KEYS[3], gid)
  end
end
redis.call('ZREM', KEYS[2], ARGV[1])
if not lu then return 0 end
redis.call('DEL', KEYS[1], KEYS[3])
return 1
"#,
    )
});

/// KEYS: the key, the key index. ARGV: kid, sealed, created_at, retired_at or ''.
static PUT_SIGNING_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('signing key exists') end
redis.call('HSET', KEYS[1], 'sealed', ARGV[2], 'created_at', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'retired_at', ARGV[4]) end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"#,
    )
});

/// KEYS: key index. ARGV: prefix. Returns {kid, HGETALL, kid, HGETALL, …}.
static SIGNING_KEYS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local fields = redis.call('HGETALL', ARGV[1] .. 'signing-key:' .. kid)
  if #fields > 0 then
    table.insert(out, kid)
    table.insert(out, fields)
  end
end
return out
"#,
    )
});

/// KEYS: key index. ARGV: prefix, kid kept, now.
static RETIRE_KEYS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. 'signing-key:' .. kid
  if kid ~= ARGV[2] and redis.call('EXISTS', k) == 1 and redis.call('HEXISTS', k, 'retired_at') == 0 then
    redis.call('HSET', k, 'retired_at', ARGV[3])
  end
end
return 1
"#,
    )
});

impl RedisStore {
    /// A store on the Redis at `url` (`redis://`, `rediss://`, `redis+unix://`, `unix://`),
    /// under [`PREFIX`]. Connects lazily (the first call connects), so it must be called
    /// inside a Tokio runtime.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_prefix(url, PREFIX)
    }

    /// The same with another key prefix (several deployments on one Redis; tests).
    pub fn connect_with_prefix(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with_tls(url, prefix, &redis_conn::Tls::default())
    }

    /// The same with TLS settings for a `rediss://` URL (a private CA).
    pub fn connect_with_tls(
        url: &str,
        prefix: &str,
        tls: &redis_conn::Tls,
    ) -> Result<Self, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Backend(
                "the Redis store must be opened inside a Tokio runtime".into(),
            ));
        }
        let bad_url = |reason: String| StoreError::InvalidUrl {
            url: super::redact_url(url),
            reason,
        };
        let parsed: redis_conn::RedisUrl = url.parse().map_err(|e| bad_url(format!("{e}")))?;
        let client = redis_conn::client(&parsed, tls).map_err(|e| bad_url(e.to_string()))?;
        // No reconnect retries inside the manager: a call during an outage fails at once
        // and the next call starts a fresh connection attempt.
        let conn = redis_conn::manager(&client, TIMEOUT).map_err(|e| bad_url(e.to_string()))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn index(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// One command, within [`TIMEOUT`].
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(&e)),
            Err(_) => Err(StoreError::Backend("redis did not answer in time".into())),
        }
    }

    /// One script call (`EVALSHA`, loading the script if Redis lacks it), within [`TIMEOUT`]
    /// for each round trip.
    async fn eval(&self, invocation: &redis::ScriptInvocation<'_>) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(TIMEOUT * 2, invocation.invoke_async::<Value>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(redis_error(&e)),
            Err(_) => Err(StoreError::Backend("redis did not answer in time".into())),
        }
    }

    async fn eval_int(&self, invocation: &redis::ScriptInvocation<'_>) -> Result<i64, StoreError> {
        let v = self.eval(invocation).await?;
        int(&v).ok_or_else(|| corrupt("script answer"))
    }

    async fn put_json_until<T: serde::Serialize>(
        &self,
        key: String,
        value: &T,
        expires_at: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(to_json(value)?)
            .arg("PXAT")
            .arg(expires_at.max(1))
            .arg("NX");
        // NX: ids are random, an existing one is a bug; refuse as SQLite's primary key does.
        let v: Value = self.query(&cmd).await?;
        match v {
            Value::Nil => Err(StoreError::Backend("the key exists already".into())),
            _ => Ok(()),
        }
    }

    async fn take_json<T: serde::de::DeserializeOwned>(
        &self,
        key: String,
        what: &str,
    ) -> Result<Option<T>, StoreError> {
        let v: Option<Vec<u8>> = self.query(redis::cmd("GETDEL").arg(key)).await?;
        v.map(|b| from_json(&b, what)).transpose()
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }

    async fn put_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let id = client.id.as_str();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(self.key("client", id))
            .arg("data")
            .arg(to_json(client)?)
            .arg("last_used")
            .arg(client.last_used_at)
            .ignore()
            .cmd("ZADD")
            .arg(self.index("clients-by-use"))
            .arg(client.last_used_at)
            .arg(id)
            .ignore();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(redis_error(&e)),
            Err(_) => Err(StoreError::Backend("redis did not answer in time".into())),
        }
    }

    async fn get_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        let (data, last_used): (Option<Vec<u8>>, Option<i64>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(self.key("client", id.as_str()))
                    .arg("data")
                    .arg("last_used"),
            )
            .await?;
        let Some(data) = data else { return Ok(None) };
        let mut client: ClientRecord = from_json(&data, "client")?;
        if let Some(t) = last_used {
            client.last_used_at = t;
        }
        Ok(Some(client))
    }

    async fn touch_client(&self, id: &ClientId, now: UnixMillis) -> Result<(), StoreError> {
        self.eval(
            TOUCH_CLIENT
                .key(self.key("client", id.as_str()))
                .key(self.index("clients-by-use"))
                .arg(id.as_str())
                .arg(now),
        )
        .await
        .map(|_| ())
    }

    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<(), StoreError> {
        self.put_json_until(
            self.key("pending", &pending.id),
            pending,
            pending.expires_at,
        )
        .await
    }

    async fn take_pending(
        &self,
        id: &str,
        now: UnixMillis,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let p: Option<PendingAuthorization> =
            self.take_json(self.key("pending", id), "pending").await?;
        Ok(p.filter(|p| p.expires_at > now))
    }

    async fn put_login(&self, login: &UpstreamLogin) -> Result<(), StoreError> {
        self.put_json_until(
            self.key("login", &login.state_hash),
            login,
            login.expires_at,
        )
        .await
    }

    async fn take_login(
        &self,
        state_hash: &str,
        now: UnixMillis,
    ) -> Result<Option<UpstreamLogin>, StoreError> {
        let l: Option<UpstreamLogin> = self
            .take_json(self.key("login", state_hash), "login")
            .await?;
        Ok(l.filter(|l| l.expires_at > now))
    }

    async fn create_grant(&self, g: &GrantRecord) -> Result<(), StoreError> {
        let mut inv = CREATE_GRANT.prepare_invoke();
        inv.key(self.key("grant", g.id.as_str()))
            .key(self.key("client-grants", g.client_id.as_str()))
            .arg(&self.prefix)
            .arg(g.id.as_str())
            // Until a code or refresh token keeps it longer, a day (as SQLite's purge).
            .arg(g.created_at.max(g.revoked_at.unwrap_or(0)) + TOMBSTONE_MS)
            .arg("subject")
            .arg(g.subject.as_str())
            .arg("client_id")
            .arg(g.client_id.as_str())
            .arg("scope")
            .arg(&g.scope)
            .arg("resource")
            .arg(&g.resource)
            .arg("created_at")
            .arg(g.created_at)
            .arg("sealed")
            .arg(&g.upstream.sealed[..])
            .arg("access_expires_at")
            .arg(g.upstream.access_expires_at)
            .arg("version")
            .arg(g.upstream.version);
        if let Some(r) = g.revoked_at {
            inv.arg("revoked_at").arg(r);
        }
        self.eval(&inv).await.map(|_| ())
    }

    async fn get_grant(&self, id: &GrantId) -> Result<Option<GrantRecord>, StoreError> {
        let v: Value = self
            .query(redis::cmd("HGETALL").arg(self.key("grant", id.as_str())))
            .await?;
        let f = fields(v);
        if f.is_empty() {
            return Ok(None);
        }
        grant_from(id, &f).map(Some)
    }

    async fn revoke_grant(&self, id: &GrantId, now: UnixMillis) -> Result<bool, StoreError> {
        let changed = self
            .eval_int(
                REVOKE_GRANT
                    .key(self.key("grant", id.as_str()))
                    .key(self.key("grant-refresh", id.as_str()))
                    .arg(&self.prefix)
                    .arg(id.as_str())
                    .arg(now)
                    .arg(now + TOMBSTONE_MS),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn swap_upstream(
        &self,
        id: &GrantId,
        expected_version: i64,
        upstream: &SealedUpstream,
    ) -> Result<bool, StoreError> {
        let swapped = self
            .eval_int(
                SWAP_UPSTREAM
                    .key(self.key("grant", id.as_str()))
                    .arg(expected_version)
                    .arg(&upstream.sealed[..])
                    .arg(upstream.access_expires_at)
                    .arg(upstream.version),
            )
            .await?;
        Ok(swapped == 1)
    }

    async fn lease_upstream_refresh(
        &self,
        id: &GrantId,
        holder: &str,
        _now: UnixMillis,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        // Redis's own clock ends the lease (PX), so replicas' clocks need not agree.
        let got = self
            .eval_int(
                LEASE
                    .key(self.key("lease", id.as_str()))
                    .arg(holder)
                    .arg(ttl_ms.max(1)),
            )
            .await?;
        Ok(got == 1)
    }

    async fn release_upstream_refresh(&self, id: &GrantId, holder: &str) -> Result<(), StoreError> {
        self.eval(RELEASE.key(self.key("lease", id.as_str())).arg(holder))
            .await
            .map(|_| ())
    }

    async fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        self.eval(
            PUT_CODE
                .key(self.key("code", &code.hash))
                .key(self.key("grant", code.grant_id.as_str()))
                .arg(code.grant_id.as_str())
                .arg(to_json(code)?)
                .arg(code.expires_at)
                // A spent code stays a day past its expiry, so a late replay is recognised.
                .arg(code.expires_at + TOMBSTONE_MS),
        )
        .await
        .map(|_| ())
    }

    async fn take_code(&self, hash: &str, now: UnixMillis) -> Result<TakeCode, StoreError> {
        let v = self
            .eval(
                TAKE_CODE
                    .key(self.key("code", hash))
                    .arg(&self.prefix)
                    .arg(now)
                    .arg(now + TOMBSTONE_MS),
            )
            .await?;
        let (status, mut it) = status_and_rest(v, "take_code answer")?;
        match status {
            Some(0) => Ok(TakeCode::NotFound),
            Some(1) => {
                let data = it.next().and_then(bytes).ok_or_else(|| corrupt("code"))?;
                let expires_at = it
                    .next()
                    .as_ref()
                    .and_then(int)
                    .ok_or_else(|| corrupt("code"))?;
                let record: CodeRecord = from_json(&data, "code")?;
                Ok(if expires_at > now {
                    TakeCode::Fresh(record)
                } else {
                    TakeCode::Expired(record)
                })
            }
            Some(2) => Ok(TakeCode::Replayed(next_grant_id(&mut it, "code")?)),
            _ => Err(corrupt("take_code answer")),
        }
    }

    async fn put_refresh(&self, t: &RefreshRecord) -> Result<(), StoreError> {
        self.eval(
            PUT_REFRESH
                .arg(&self.prefix)
                .arg(&t.hash)
                .arg(t.grant_id.as_str())
                .arg(t.client_id.as_str())
                .arg(t.issued_at)
                .arg(t.expires_at)
                .arg(t.rotated_at.map(|r| r.to_string()).unwrap_or_default())
                .arg(t.expires_at + TOMBSTONE_MS),
        )
        .await
        .map(|_| ())
    }

    async fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let v: Value = self
            .query(redis::cmd("HGETALL").arg(self.key("refresh", hash)))
            .await?;
        let f = fields(v);
        if f.is_empty() {
            return Ok(None);
        }
        const W: &str = "refresh token";
        Ok(Some(RefreshRecord {
            hash: hash.to_owned(),
            grant_id: GrantId::new(text_field(&f, "grant_id", W)?),
            client_id: ClientId::new(text_field(&f, "client_id", W)?),
            issued_at: int_field(&f, "issued_at", W)?,
            expires_at: int_field(&f, "expires_at", W)?,
            rotated_at: opt_int_field(&f, "rotated_at", W)?,
        }))
    }

    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &ClientId,
        new: &RefreshRecord,
        now: UnixMillis,
        grace_ms: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let v = self
            .eval(
                ROTATE
                    .key(self.key("refresh", old_hash))
                    .arg(&self.prefix)
                    .arg(client_id.as_str())
                    .arg(&new.hash)
                    .arg(new.issued_at)
                    .arg(new.expires_at)
                    .arg(now)
                    .arg(grace_ms)
                    .arg(now + TOMBSTONE_MS)
                    .arg(new.expires_at + TOMBSTONE_MS),
            )
            .await?;
        let (status, mut it) = status_and_rest(v, "rotate answer")?;
        match status {
            Some(0) => Ok(RotateOutcome::Invalid),
            Some(s @ (1 | 2)) => {
                let grant_id = next_grant_id(&mut it, "rotate")?;
                let f = fields(it.next().ok_or_else(|| corrupt("rotate answer"))?);
                let grant = grant_from(&grant_id, &f)?;
                Ok(if s == 1 {
                    RotateOutcome::Rotated(grant)
                } else {
                    RotateOutcome::WithinGrace(grant)
                })
            }
            Some(3) => Ok(RotateOutcome::Reused(next_grant_id(&mut it, "rotate")?)),
            _ => Err(corrupt("rotate answer")),
        }
    }

    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        self.eval(
            PUT_SIGNING_KEY
                .key(self.key("signing-key", &key.kid))
                .key(self.index("signing-keys"))
                .arg(&key.kid)
                .arg(&key.sealed_private[..])
                .arg(key.created_at)
                .arg(key.retired_at.map(|r| r.to_string()).unwrap_or_default()),
        )
        .await
        .map(|_| ())
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let v = self
            .eval(
                SIGNING_KEYS
                    .key(self.index("signing-keys"))
                    .arg(&self.prefix),
            )
            .await?;
        let Value::Array(items) = v else {
            return Err(corrupt("signing keys"));
        };
        let mut out = Vec::new();
        let mut it = items.into_iter();
        while let (Some(kid), Some(f)) = (it.next(), it.next()) {
            let kid = bytes(kid).ok_or_else(|| corrupt("signing key"))?;
            let f = fields(f);
            const W: &str = "signing key";
            out.push(SigningKeyRecord {
                kid: String::from_utf8(kid).map_err(|_| corrupt(W))?,
                sealed_private: f.get("sealed").cloned().ok_or_else(|| corrupt(W))?,
                created_at: int_field(&f, "created_at", W)?,
                retired_at: opt_int_field(&f, "retired_at", W)?,
            });
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.kid.cmp(&b.kid)));
        Ok(out)
    }

    async fn retire_signing_keys_except(
        &self,
        kid: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.eval(
            RETIRE_KEYS
                .key(self.index("signing-keys"))
                .arg(&self.prefix)
                .arg(kid)
                .arg(now),
        )
        .await
        .map(|_| ())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("DEL")
            .arg(self.key("signing-key", kid))
            .ignore()
            .cmd("SREM")
            .arg(self.index("signing-keys"))
            .arg(kid)
            .ignore();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(redis_error(&e)),
            Err(_) => Err(StoreError::Backend("redis did not answer in time".into())),
        }
    }

    /// Everything short-lived expires by itself; this removes the clients unused since
    /// `clients_unused_since` that have no live grant, looking at no more than a bounded
    /// number of candidates (the oldest first) per call.
    async fn purge(&self, policy: PurgePolicy) -> Result<Purged, StoreError> {
        let index = self.index("clients-by-use");
        let mut purged = Purged::default();
        let mut offset = 0usize;
        let mut seen = 0usize;
        while seen < PURGE_CLIENTS_MAX {
            let ids: Vec<String> = self
                .query(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(&index)
                        .arg("-inf")
                        .arg(policy.clients_unused_since)
                        .arg("LIMIT")
                        .arg(offset)
                        .arg(PURGE_PAGE),
                )
                .await?;
            if ids.is_empty() {
                break;
            }
            seen += ids.len();
            let mut kept = 0usize;
            for id in &ids {
                let gone = self
                    .eval_int(
                        PURGE_CLIENT
                            .key(self.key("client", id))
                            .key(&index)
                            .key(self.key("client-grants", id))
                            .arg(id)
                            .arg(policy.clients_unused_since)
                            .arg(&self.prefix),
                    )
                    .await?;
                if gone == 1 {
                    purged.clients += 1;
                } else if self
                    .key_in_index(&index, id, policy.clients_unused_since)
                    .await?
                {
                    kept += 1;
                }
            }
            offset += kept;
        }
        Ok(purged)
    }
}

impl RedisStore {
    /// Whether `id` is still in the purge window of `index` (kept because of a live grant).
    async fn key_in_index(
        &self,
        index: &str,
        id: &str,
        until: UnixMillis,
    ) -> Result<bool, StoreError> {
        let score: Option<f64> = self.query(redis::cmd("ZSCORE").arg(index).arg(id)).await?;
        Ok(score.is_some_and(|s| s <= until as f64))
    }
}
