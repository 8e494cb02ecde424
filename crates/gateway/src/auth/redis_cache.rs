//! [`RedisCredentialCache`]: the PAT validation cache shared by every replica, so a PAT
//! Layer accepted through one replica is not checked again through another. Keys are the
//! SHA-256 of the token ([`CacheKey`]); the token itself is never stored. Redis being away
//! is a cache miss (the token is checked with Layer, the authority), never an acceptance.

use std::time::Duration;

use redis::AsyncCommands;

use super::cache::{CacheKey, CachedIdentity, CredentialCache};
use super::{CredentialKind, UserId};
use crate::redis::{RedisError, SharedRedis};

pub struct RedisCredentialCache {
    redis: SharedRedis,
}

impl RedisCredentialCache {
    pub fn new(redis: SharedRedis) -> Self {
        Self { redis }
    }
}

fn encode(identity: &CachedIdentity) -> String {
    let kind = match identity.kind {
        CredentialKind::Pat => "pat",
        CredentialKind::OAuth => "oauth",
    };
    format!("{kind} {}", identity.user.as_str())
}

fn decode(text: &str) -> Option<CachedIdentity> {
    let (kind, user) = text.split_once(' ')?;
    let kind = match kind {
        "pat" => CredentialKind::Pat,
        "oauth" => CredentialKind::OAuth,
        _ => return None,
    };
    (!user.is_empty()).then(|| CachedIdentity {
        user: UserId::from_stored(user),
        kind,
    })
}

#[async_trait::async_trait]
impl CredentialCache for RedisCredentialCache {
    async fn get(&self, key: &CacheKey) -> Option<CachedIdentity> {
        let mut conn = self.redis.conn();
        let text: Result<Option<String>, _> =
            conn.get(self.redis.keys().credential(key.as_str())).await;
        match text {
            Ok(text) => text.as_deref().and_then(decode),
            Err(error) => {
                tracing::warn!(error = %RedisError::from_client(&error), "credential cache unreachable; asking Layer");
                None
            }
        }
    }

    async fn put(&self, key: CacheKey, identity: CachedIdentity, ttl: Duration) {
        let mut conn = self.redis.conn();
        let ttl_ms = (ttl.as_millis() as u64).max(1);
        let result: Result<(), _> = conn
            .pset_ex(
                self.redis.keys().credential(key.as_str()),
                encode(&identity),
                ttl_ms,
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(error = %RedisError::from_client(&error), "could not share an accepted credential");
        }
    }

    async fn remove(&self, key: &CacheKey) {
        let mut conn = self.redis.conn();
        let result: Result<(), _> = conn.del(self.redis.keys().credential(key.as_str())).await;
        if let Err(error) = result {
            tracing::warn!(error = %RedisError::from_client(&error), "could not forget a credential");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip() {
        let identity = CachedIdentity {
            user: UserId::from_stored("pat:0123abcd"),
            kind: CredentialKind::Pat,
        };
        assert_eq!(decode(&encode(&identity)), Some(identity));
        assert_eq!(decode("garbage"), None);
        assert_eq!(decode("pat "), None);
    }
}
