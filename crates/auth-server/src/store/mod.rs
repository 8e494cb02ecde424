//! Where the authorization server keeps its state. Every operation that must happen once
//! (taking a code, rotating a refresh token, refreshing Layer's token, consuming a consent) is
//! one atomic call, so a Redis implementation (issue 7) can do each in one transaction or
//! script, and two replicas racing on the same token see one winner.

mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    #[error("unsupported store URL {0:?}: use sqlite://PATH")]
    UnsupportedUrl(String),
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

/// Opens the store a `--store` URL names: `sqlite://PATH` (a relative path is under
/// `data_dir`), or `sqlite::memory:` (tests).
pub fn open_store(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    let path: PathBuf = match url {
        None => data_dir.join("auth.sqlite3"),
        Some("sqlite::memory:") => return Ok(Arc::new(SqliteStore::open_in_memory()?)),
        Some(url) => {
            let rest = url
                .strip_prefix("sqlite://")
                .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
            if rest.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_owned()));
            }
            let p = PathBuf::from(rest);
            if p.is_absolute() { p } else { data_dir.join(p) }
        }
    };
    Ok(Arc::new(SqliteStore::open(&path)?))
}
