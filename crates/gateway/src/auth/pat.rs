//! Layer Personal Access Tokens: checked with Layer on first use, then trusted for a short
//! TTL under a hash of the token. Concurrent first uses of one token share one check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use layer_api::BearerToken;
use tokio::sync::OnceCell;

use super::cache::{CacheKey, CachedIdentity, CredentialCache};
use super::{AuthError, Authenticator, Caller, CredentialKind, PresentedToken, UserId};

/// How a PAT is checked with Layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Layer said the token is not valid (401).
    #[error("Layer rejected the token")]
    Rejected,
    /// Layer could not answer (unreachable, timed out, 5xx, throttled).
    #[error("Layer could not check the token: {0}")]
    Unavailable(String),
}

/// Asks Layer whether a token is valid. The production implementation makes the cheapest
/// authenticated call (`GET /workspaces?limit=1`): v1 has no endpoint that names the caller.
#[async_trait::async_trait]
pub trait PatVerifier: Send + Sync + 'static {
    async fn verify(&self, token: &BearerToken) -> Result<(), VerifyError>;
}

type Flight = Arc<OnceCell<Result<CachedIdentity, AuthError>>>;

/// The PAT [`Authenticator`].
pub struct PatAuthenticator {
    verifier: Arc<dyn PatVerifier>,
    cache: Arc<dyn CredentialCache>,
    ttl: Duration,
    /// Checks in progress, so a burst of requests with one new token makes one Layer call.
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
    /// What `Retry-After` says when Layer cannot check a token.
    retry_after: Duration,
}

impl PatAuthenticator {
    pub fn new(
        verifier: Arc<dyn PatVerifier>,
        cache: Arc<dyn CredentialCache>,
        ttl: Duration,
    ) -> Self {
        Self {
            verifier,
            cache,
            ttl,
            in_flight: Mutex::new(HashMap::new()),
            retry_after: Duration::from_secs(5),
        }
    }

    async fn check(
        &self,
        key: &CacheKey,
        token: &PresentedToken,
    ) -> Result<CachedIdentity, AuthError> {
        match self.verifier.verify(&token.to_upstream()).await {
            Ok(()) => {
                let identity = CachedIdentity { user: UserId::for_pat(token), kind: CredentialKind::Pat };
                self.cache.put(key.clone(), identity.clone(), self.ttl).await;
                Ok(identity)
            }
            Err(VerifyError::Rejected) => Err(AuthError::Rejected {
                reason: "Layer does not accept this Personal Access Token (revoked, expired or mistyped). \
                         Create one at app.layer.ai, Settings, Personal Access Tokens."
                    .to_owned(),
            }),
            Err(VerifyError::Unavailable(reason)) => {
                tracing::warn!(%reason, "could not check a PAT with Layer");
                Err(AuthError::Unavailable {
                    reason: "Layer could not be reached to check the token; retry shortly".to_owned(),
                    retry_after: self.retry_after,
                })
            }
        }
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Flight>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait::async_trait]
impl Authenticator for PatAuthenticator {
    async fn authenticate(&self, token: &PresentedToken) -> Result<Caller, AuthError> {
        let key = CacheKey::of_token(token.expose_secret());
        let identity = match self.cache.get(&key).await {
            Some(identity) => identity,
            None => {
                let flight = self.flights().entry(key.clone()).or_default().clone();
                let result = flight.get_or_init(|| self.check(&key, token)).await.clone();
                // The first finisher clears the slot; later requests use the cache (or check
                // again after a rejection or an outage).
                self.flights().remove(&key);
                result?
            }
        };
        Ok(Caller::new(
            identity.user,
            identity.kind,
            token.to_upstream(),
        ))
    }

    async fn forget(&self, token: &BearerToken) {
        self.cache
            .remove(&CacheKey::of_token(token.expose_secret()))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::auth::MemoryCredentialCache;

    struct FakeLayer {
        calls: AtomicUsize,
        answer: Mutex<Result<(), VerifyError>>,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl PatVerifier for FakeLayer {
        async fn verify(&self, _token: &BearerToken) -> Result<(), VerifyError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.answer.lock().unwrap().clone()
        }
    }

    fn setup(answer: Result<(), VerifyError>, ttl: Duration) -> (Arc<FakeLayer>, PatAuthenticator) {
        let fake = Arc::new(FakeLayer {
            calls: AtomicUsize::new(0),
            answer: Mutex::new(answer),
            delay: Duration::from_millis(20),
        });
        let auth = PatAuthenticator::new(
            fake.clone(),
            Arc::new(MemoryCredentialCache::default()),
            ttl,
        );
        (fake, auth)
    }

    fn token(s: &str) -> PresentedToken {
        PresentedToken::parse_token(s).unwrap()
    }

    #[tokio::test]
    async fn accepted_tokens_are_cached_for_the_ttl() {
        let (fake, auth) = setup(Ok(()), Duration::from_millis(100));
        let caller = auth.authenticate(&token("good")).await.unwrap();
        assert_eq!(caller.user(), &UserId::for_pat(&token("good")));
        assert_eq!(caller.upstream_credential().expose_secret(), "good");
        auth.authenticate(&token("good")).await.unwrap();
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            1,
            "second use served from cache"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        auth.authenticate(&token("good")).await.unwrap();
        assert_eq!(
            fake.calls.load(Ordering::SeqCst),
            2,
            "checked again after the TTL"
        );
    }

    #[tokio::test]
    async fn concurrent_first_uses_share_one_check() {
        let (fake, auth) = setup(Ok(()), Duration::from_secs(60));
        let auth = Arc::new(auth);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.authenticate(&token("burst")).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn rejected_and_unavailable_are_distinct_and_not_cached() {
        let (fake, auth) = setup(Err(VerifyError::Rejected), Duration::from_secs(60));
        assert!(matches!(
            auth.authenticate(&token("bad")).await,
            Err(AuthError::Rejected { .. })
        ));
        *fake.answer.lock().unwrap() = Err(VerifyError::Unavailable("connect refused".into()));
        match auth.authenticate(&token("bad")).await {
            Err(AuthError::Unavailable {
                retry_after,
                reason,
            }) => {
                assert!(retry_after >= Duration::from_secs(1));
                assert!(!reason.contains("bad"));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        *fake.answer.lock().unwrap() = Ok(());
        assert!(
            auth.authenticate(&token("bad")).await.is_ok(),
            "recovers once Layer answers"
        );
        assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn forget_drops_the_cached_entry() {
        let (fake, auth) = setup(Ok(()), Duration::from_secs(60));
        auth.authenticate(&token("t")).await.unwrap();
        auth.forget(&token("t").to_upstream()).await;
        *fake.answer.lock().unwrap() = Err(VerifyError::Rejected);
        assert!(matches!(
            auth.authenticate(&token("t")).await,
            Err(AuthError::Rejected { .. })
        ));
    }
}
