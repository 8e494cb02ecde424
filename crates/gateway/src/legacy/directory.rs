//! Where the old transport finds a session (`legacy-sse`'s `SessionDirectory`): this
//! process only, or, with `redis_url` set, every replica sharing that Redis, so a POST that
//! a round-robin balancer sends to another replica than the one holding the stream still
//! reaches it (`legacy_sse::RedisDirectory`: Redis pub/sub).
//!
//! A forwarded POST carries its `Authorization` and `X-Request-Id` headers through Redis;
//! the holder authenticates the credential again with the gateway's own authenticator
//! ([`Reauthenticate`]) and puts the [`Caller`] into the rebuilt request, exactly as
//! `auth/layer.rs` does for a request that arrives directly. The credential thus crosses
//! Redis: production Redis belongs on a private network or behind `rediss://`.

use std::sync::Arc;
use std::time::Duration;

use legacy_sse::{
    DeliveryError, LocalDirectory, RebuildParts, RedisDirectory, RedisDirectoryConfig,
    SessionDirectory,
};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, PresentedToken, SharedAuthenticator};
use crate::config::Config;
use crate::http::trace::REQUEST_ID;

/// Keys and channels of the old transport's sessions in the shared Redis.
const KEY_PREFIX: &str = "layer-mcp:legacy-sse";

/// The directory the configuration asks for.
pub struct Directory {
    pub sessions: Arc<dyn SessionDirectory>,
    /// The shared one, when `redis_url` is set (for the drain at shutdown).
    pub shared: Option<Arc<RedisDirectory>>,
}

/// `LocalDirectory` without `redis_url`; with it, a `RedisDirectory` whose forwarded POSTs
/// are authenticated again by `authenticator`. Must run inside the Tokio runtime.
pub fn from_config(
    config: &Config,
    authenticator: SharedAuthenticator,
) -> anyhow::Result<Directory> {
    let Some(url) = &config.redis_url else {
        return Ok(Directory {
            sessions: Arc::new(LocalDirectory::new()),
            shared: None,
        });
    };
    let settings = RedisDirectoryConfig {
        key_prefix: KEY_PREFIX.to_owned(),
        forward_headers: vec![http::header::AUTHORIZATION, REQUEST_ID],
        tls: config.redis_tls(),
        ..RedisDirectoryConfig::default()
    };
    let directory = RedisDirectory::start(
        url.expose(),
        settings,
        Arc::new(Reauthenticate(authenticator)),
    )
    .map_err(|e| anyhow::anyhow!("setting `redis_url` ({url}): {e}"))?;
    let directory = Arc::new(directory);
    Ok(Directory {
        sessions: directory.clone(),
        shared: Some(directory),
    })
}

impl Directory {
    /// Drain: once shutdown has begun and this replica's streams have closed (or after
    /// `limit`), forgets its sessions in Redis, so POSTs on other replicas get 404 at once
    /// and their clients open new streams. Until then, the holder answers them 503
    /// (shutting down).
    pub fn drain_on(
        &self,
        shutdown: CancellationToken,
        open_streams: impl Fn() -> usize + Send + 'static,
        limit: Duration,
    ) {
        let Some(directory) = self.shared.clone() else {
            return;
        };
        tokio::spawn(async move {
            shutdown.cancelled().await;
            let deadline = tokio::time::Instant::now() + limit;
            while open_streams() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            directory.close().await;
        });
    }
}

/// Rebuilds a forwarded POST as `auth/layer.rs` would have: its bearer authenticated again,
/// the [`Caller`](crate::auth::Caller) in its extensions.
struct Reauthenticate(SharedAuthenticator);

#[async_trait::async_trait]
impl RebuildParts for Reauthenticate {
    async fn rebuild(
        &self,
        mut parts: http::request::Parts,
    ) -> Result<http::request::Parts, DeliveryError> {
        // The replica that took the POST authenticated it already, so a missing or
        // refused credential here means it changed in between (revoked): answered like a
        // session the sender may not use.
        let token =
            PresentedToken::from_headers(&parts.headers).map_err(|_| DeliveryError::NotFound)?;
        match self.0.authenticate(&token).await {
            Ok(caller) => {
                parts.extensions.insert(caller);
                Ok(parts)
            }
            Err(AuthError::Rejected { .. }) => Err(DeliveryError::NotFound),
            Err(AuthError::Unavailable { reason, .. }) => Err(DeliveryError::Unavailable(reason)),
        }
    }
}
