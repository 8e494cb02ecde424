//! A short-lived cache of credentials Layer has accepted, keyed by a SHA-256 of the token so
//! the cache never holds a token. Behind a trait: with `redis_url`, `redis_cache.rs` shares it
//! between replicas.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{CredentialKind, UserId};

/// SHA-256 over the parts, each followed by a NUL separator, as lowercase hex.
pub fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let digest = hasher.finalize();
    let mut out = String::with_capacity(64);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The cache key of a token: a domain-separated SHA-256, hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    pub fn of_token(token: &str) -> Self {
        Self(sha256_hex(&[
            "layer-mcp-gateway/credential-cache/v1",
            token,
        ]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What is remembered about an accepted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedIdentity {
    pub user: UserId,
    pub kind: CredentialKind,
}

/// Where accepted credentials are remembered.
#[async_trait::async_trait]
pub trait CredentialCache: Send + Sync + 'static {
    async fn get(&self, key: &CacheKey) -> Option<CachedIdentity>;
    async fn put(&self, key: CacheKey, identity: CachedIdentity, ttl: Duration);
    async fn remove(&self, key: &CacheKey);
}

/// The in-process cache (one replica).
#[derive(Debug)]
pub struct MemoryCredentialCache {
    entries: Mutex<HashMap<CacheKey, (CachedIdentity, Instant)>>,
    max_entries: usize,
}

impl MemoryCredentialCache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, (CachedIdentity, Instant)>> {
        // A panic while holding this lock cannot leave the map inconsistent; keep serving.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for MemoryCredentialCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

#[async_trait::async_trait]
impl CredentialCache for MemoryCredentialCache {
    async fn get(&self, key: &CacheKey) -> Option<CachedIdentity> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((identity, expires)) if *expires > Instant::now() => Some(identity.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    async fn put(&self, key: CacheKey, identity: CachedIdentity, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.max_entries {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.max_entries {
                // Still full of live entries: drop the one closest to expiry.
                if let Some(victim) = entries
                    .iter()
                    .min_by_key(|(_, (_, e))| *e)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key, (identity, now + ttl));
    }

    async fn remove(&self, key: &CacheKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> CachedIdentity {
        CachedIdentity {
            user: UserId::from_stored(name),
            kind: CredentialKind::Pat,
        }
    }

    #[test]
    fn keys_are_hashes() {
        let key = CacheKey::of_token("lyr_pat_secret");
        assert_eq!(key.as_str().len(), 64);
        assert!(!key.as_str().contains("secret"));
        assert_eq!(key, CacheKey::of_token("lyr_pat_secret"));
        assert_ne!(key, CacheKey::of_token("lyr_pat_other"));
    }

    #[tokio::test]
    async fn entries_expire_and_can_be_removed() {
        let cache = MemoryCredentialCache::default();
        let key = CacheKey::of_token("a");
        cache
            .put(key.clone(), identity("u"), Duration::from_millis(50))
            .await;
        assert_eq!(cache.get(&key).await, Some(identity("u")));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(cache.get(&key).await, None);
        cache
            .put(key.clone(), identity("u"), Duration::from_secs(60))
            .await;
        cache.remove(&key).await;
        assert_eq!(cache.get(&key).await, None);
    }

    #[tokio::test]
    async fn bounded() {
        let cache = MemoryCredentialCache::new(2);
        for name in ["a", "b", "c"] {
            cache
                .put(
                    CacheKey::of_token(name),
                    identity(name),
                    Duration::from_secs(60),
                )
                .await;
        }
        assert_eq!(cache.lock().len(), 2);
        assert!(cache.get(&CacheKey::of_token("c")).await.is_some());
    }
}
