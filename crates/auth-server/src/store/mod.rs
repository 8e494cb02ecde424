//! Where the authorization server keeps its state: SQLite (one gateway, the default) or
//! Redis (several replicas sharing it). Every operation that must happen once (taking a
//! code, rotating a refresh token, refreshing Layer's token, consuming a consent) is one
//! atomic call (a transaction in SQLite, a Lua script or `GETDEL` in Redis), so two replicas
//! racing on the same token see one winner.

mod redis;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use redis::RedisStore;
pub use sqlite::SqliteStore;

use crate::model::{
    ClientId, ClientRecord, CodeRecord, GrantId, GrantRecord, PendingAuthorization, Purged,
    RefreshRecord, RotateOutcome, SealedUpstream, SigningKeyRecord, TakeCode, UnixMillis,
    UpstreamLogin,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store failed: {0}")]
    Backend(String),
    /// The URL is shown with any user name and password replaced by `***`.
    #[error(
        "unsupported store URL {0:?}: use sqlite://PATH or redis://[:PASSWORD@]HOST[:PORT][/DB] \
         (also rediss://, redis+unix://, unix://)"
    )]
    UnsupportedUrl(String),
    /// A store URL of a known scheme that cannot be used (shown redacted).
    #[error("store URL {url:?} cannot be used: {reason}")]
    InvalidUrl { url: String, reason: String },
}

/// What purging expired state considers old.
#[derive(Clone, Copy, Debug)]
pub struct PurgePolicy {
    pub now: UnixMillis,
    /// Dynamically registered clients not used since then, with no live grant, go.
    pub clients_unused_since: UnixMillis,
    /// Revoked grants, and spent codes, older than this go.
    pub tombstones_before: UnixMillis,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `redis` (for `/readyz` and logs).
    fn kind(&self) -> &'static str;
    /// A cheap round trip that fails when the store cannot be used (readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;

    // Clients.
    async fn put_client(&self, client: &ClientRecord) -> Result<(), StoreError>;
    async fn get_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError>;
    /// Records that a client was used (keeps its registration from expiring).
    async fn touch_client(&self, id: &ClientId, now: UnixMillis) -> Result<(), StoreError>;

    // Consent and the upstream login: both single use.
    async fn put_pending(&self, pending: &PendingAuthorization) -> Result<(), StoreError>;
    /// Removes and returns the pending authorization if it exists and has not expired.
    async fn take_pending(
        &self,
        id: &str,
        now: UnixMillis,
    ) -> Result<Option<PendingAuthorization>, StoreError>;
    async fn put_login(&self, login: &UpstreamLogin) -> Result<(), StoreError>;
    /// Removes and returns the login if it exists and has not expired.
    async fn take_login(
        &self,
        state_hash: &str,
        now: UnixMillis,
    ) -> Result<Option<UpstreamLogin>, StoreError>;

    // Grants.
    async fn create_grant(&self, grant: &GrantRecord) -> Result<(), StoreError>;
    async fn get_grant(&self, id: &GrantId) -> Result<Option<GrantRecord>, StoreError>;
    /// Revokes a grant (and so every token issued from it). Returns whether it was live.
    async fn revoke_grant(&self, id: &GrantId, now: UnixMillis) -> Result<bool, StoreError>;
    /// Replaces Layer's tokens if the stored version is still `expected_version` (and the
    /// grant is live); returns whether it did. The loser of a race re-reads.
    async fn swap_upstream(
        &self,
        id: &GrantId,
        expected_version: i64,
        upstream: &SealedUpstream,
    ) -> Result<bool, StoreError>;

    /// Takes the right to refresh Layer's tokens for a grant, for `ttl_ms`, unless another
    /// holder has it (across replicas, so only one of them calls Layer). Returns whether
    /// `holder` has it now.
    async fn lease_upstream_refresh(
        &self,
        id: &GrantId,
        holder: &str,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Gives the lease back (only if `holder` still has it).
    async fn release_upstream_refresh(&self, id: &GrantId, holder: &str) -> Result<(), StoreError>;

    // Codes.
    async fn put_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Spends a code. A second use revokes the grant issued from it.
    async fn take_code(&self, hash: &str, now: UnixMillis) -> Result<TakeCode, StoreError>;

    // Refresh tokens.
    async fn put_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError>;
    async fn get_refresh(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// Rotates `old_hash` to `new` (whose grant id is taken from the old token), honouring a
    /// grace window of `grace_ms` after a first rotation; a reuse after it revokes the grant.
    async fn rotate_refresh(
        &self,
        old_hash: &str,
        client_id: &ClientId,
        new: &RefreshRecord,
        now: UnixMillis,
        grace_ms: i64,
    ) -> Result<RotateOutcome, StoreError>;

    // Signing keys.
    async fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError>;
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    async fn retire_signing_keys_except(
        &self,
        kid: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    async fn delete_signing_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Removes expired and long-unused state.
    async fn purge(&self, policy: PurgePolicy) -> Result<Purged, StoreError>;
}

/// Whether `url` names a Redis store (`redis://`, `rediss://`, `redis+unix://`, `unix://`).
pub fn is_redis_url(url: &str) -> bool {
    ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| url.len() >= scheme.len() && url[..scheme.len()].eq_ignore_ascii_case(scheme))
}

/// `url` fit for an error message or a log line (user name, password and query hidden).
pub use redis_conn::redact_url;

/// Opens the store a `--store` URL names: `sqlite://PATH` (a relative path is under
/// `data_dir`; the default is `<data_dir>/auth.sqlite3`), `sqlite::memory:` (tests), or a
/// Redis URL (`redis://`, `rediss://`, `redis+unix://`, `unix://`), which every replica of
/// a deployment must share. A Redis store connects lazily, so this must run inside a Tokio
/// runtime, and it succeeds while Redis is down (the first use fails instead). Error
/// messages never show a password from the URL.
pub fn open_store(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    open_store_with_tls(url, data_dir, &redis_conn::Tls::default())
}

/// [`open_store`] with TLS settings for a `rediss://` store (the gateway's
/// `redis_ca_file`).
pub fn open_store_with_tls(
    url: Option<&str>,
    data_dir: &Path,
    tls: &redis_conn::Tls,
) -> Result<Arc<dyn Store>, StoreError> {
    let path: PathBuf = match url {
        None => data_dir.join("auth.sqlite3"),
        Some("sqlite::memory:") => return Ok(Arc::new(SqliteStore::open_in_memory()?)),
        Some(url) if is_redis_url(url) => {
            return Ok(Arc::new(RedisStore::connect_with_tls(
                url,
                redis::PREFIX,
                tls,
            )?));
        }
        Some(url) => {
            let rest = url
                .strip_prefix("sqlite://")
                .ok_or_else(|| StoreError::UnsupportedUrl(redact_url(url)))?;
            if rest.is_empty() {
                return Err(StoreError::UnsupportedUrl(redact_url(url)));
            }
            let p = PathBuf::from(rest);
            if p.is_absolute() { p } else { data_dir.join(p) }
        }
    };
    Ok(Arc::new(SqliteStore::open(&path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_errors_never_show_a_password() {
        let dir = std::path::Path::new("/nonexistent");
        for url in [
            "postgres://admin:hunter2@db.internal/auth",
            "http://user:hunter2@example.com/",
            "mysql:user:hunter2@host",
            "hunter2",
            "redis-cluster://h?password=hunter2",
        ] {
            let Err(e) = open_store(Some(url), dir) else {
                panic!("{url} accepted")
            };
            let text = e.to_string();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("redis://"), "says what works: {text}");
        }
        assert_eq!(
            redact_url("redis://:hunter2@redis.internal:6379/2"),
            "redis://:***@redis.internal:6379/2"
        );
        assert_eq!(
            redact_url("rediss://alice:hunter2@r:6380"),
            "rediss://***:***@r:6380"
        );
    }

    #[test]
    fn redis_schemes_are_recognised() {
        for url in [
            "redis://127.0.0.1:6379/0",
            "rediss://h",
            "redis+unix:///run/redis.sock",
            "unix:///run/redis.sock",
            "REDIS://h",
        ] {
            assert!(is_redis_url(url), "{url}");
        }
        assert!(!is_redis_url("sqlite://x"));
        assert!(!is_redis_url("redis"));
    }
}
