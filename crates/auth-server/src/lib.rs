//! The gateway as an OAuth 2.1 authorization server for MCP clients, with Layer's identity
//! provider upstream.
//!
//! Mount [`AuthServer::router`] next to `/mcp`; resolve bearer tokens with
//! [`AuthServer::authenticate`] (our JWTs: tell them from PATs with
//! [`AuthServer::is_own_token`]); forward [`AuthServer::upstream_token`] to Layer; answer 401s
//! with [`AuthServer::www_authenticate`].
//!
//! Modules: [`metadata`] (discovery documents, JWKS), [`clients`] (DCR, metadata documents,
//! client authentication), [`authorize`] (authorization endpoint, consent, upstream login,
//! callback), [`consent`] (the pages), [`token`] (token and revocation endpoints), [`jwt`]
//! (signing and verification), [`upstream`] (Layer's IdP and tokens), [`store`] (state),
//! [`crypto`], [`uris`], [`config`], [`error`].

pub mod authorize;
pub mod clients;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod error;
pub mod jwt;
pub mod metadata;
pub mod model;
pub mod store;
pub mod token;
pub mod upstream;
pub mod uris;

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use http::{Method, header};
use secrecy::SecretString;
use tower_http::cors::{Any, CorsLayer};

pub use config::{AuthConfig, IdpConfig, OAuthSettings, SCOPE};
pub use error::{AuthError, OAuthError};
pub use model::{ClientId, GrantId, Subject};
pub use store::{Store, StoreError, open_store, open_store_with_tls};

use crate::clients::RegistrationLimiter;
use crate::jwt::{AccessClaims, JwtError, KeyRing, KeyRingError, SigningKey};
use crate::model::now_millis;
use crate::store::PurgePolicy;
use crate::upstream::Idp;

/// Shared state of the handlers.
pub struct Inner {
    pub(crate) config: AuthConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: RwLock<KeyRing>,
    pub(crate) idp: Arc<Idp>,
    pub(crate) registrations: RegistrationLimiter,
    last_key_reload: tokio::sync::Mutex<Option<Instant>>,
}

pub(crate) type AppState = Arc<Inner>;

impl Inner {
    /// How long a retired signing key stays published: until the last token it signed has
    /// expired, plus a margin for clock skew.
    pub(crate) fn keep_retired_ms(&self) -> i64 {
        i64::try_from(self.config.access_token_ttl.as_millis()).unwrap_or(i64::MAX / 4) + 300_000
    }
}

/// Why the authorization server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    #[error("cannot set up the identity provider client: {0}")]
    Idp(String),
}

/// Who an OAuth access token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthCaller {
    /// The user at Layer (the IdP's subject).
    pub subject: Subject,
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub scope: String,
    /// When the access token expires (seconds since the epoch).
    pub expires_at: i64,
}

/// The authorization server. Cheap to clone.
#[derive(Clone)]
pub struct AuthServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.inner.config.issuer())
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// Loads (or creates) the signing keys and starts the periodic purge of expired state.
    pub async fn start(config: AuthConfig, store: Arc<dyn Store>) -> Result<Self, StartError> {
        let now = now_millis();
        let mut records = store.signing_keys().await?;
        if !records.iter().any(|r| r.retired_at.is_none()) {
            let (_, record) = SigningKey::generate(&config.encryption_key, now)?;
            store.put_signing_key(&record).await?;
            tracing::info!(kid = %record.kid, "created an access-token signing key");
            records = store.signing_keys().await?;
        }
        let keys = KeyRing::from_records(&config.encryption_key, &records)?;
        let idp = Idp::new(
            config.idp.clone(),
            config.url(authorize::CALLBACK_PATH),
            config.encryption_key.clone(),
            config.upstream_refresh_margin,
        )
        .map_err(|e| StartError::Idp(e.to_string()))?;
        let inner = Arc::new(Inner {
            registrations: RegistrationLimiter::new(
                config.registrations_per_window,
                config.registration_window,
            ),
            config,
            store,
            keys: RwLock::new(keys),
            idp: Arc::new(idp),
            last_key_reload: tokio::sync::Mutex::new(None),
        });
        spawn_purger(Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Which store holds the OAuth state: `sqlite` or `redis`.
    pub fn store_kind(&self) -> &'static str {
        self.inner.store.kind()
    }

    /// One cheap round trip to the store (for `/readyz`): an error means logins, token
    /// exchanges and token checks answer 503 until it is back.
    pub async fn check_store(&self) -> Result<(), StoreError> {
        self.inner.store.ping().await
    }

    /// The routes: discovery documents, `/authorize`, `/authorize/consent`,
    /// `/oauth/callback`, `/register`, `/token`, `/revoke`. CORS is open on the documents and
    /// the JSON endpoints (browser-based clients call them); the pages get none.
    pub fn router(&self) -> Router {
        let cors = CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("mcp-protocol-version"),
            ])
            .max_age(Duration::from_secs(3600));
        let mut api = Router::new();
        // Each metadata document is served at its well-known path and, since some clients
        // insert the resource path after the well-known segment, at that path too.
        for (well_known, document) in [
            (
                "/.well-known/oauth-protected-resource",
                get(metadata::protected_resource),
            ),
            (
                "/.well-known/oauth-authorization-server",
                get(metadata::authorization_server),
            ),
            (
                "/.well-known/openid-configuration",
                get(metadata::openid_configuration),
            ),
        ] {
            let with_resource = format!("{well_known}{}", self.inner.config.resource_path);
            api = api
                .route(well_known, document.clone())
                .route(&with_resource, document);
        }
        let api = api
            .route(metadata::JWKS_PATH, get(metadata::jwks))
            .route("/register", post(clients::register))
            .route("/token", post(token::token))
            .route("/revoke", post(token::revoke))
            .layer(cors);
        let pages = Router::new()
            .route("/authorize", get(authorize::authorize))
            .route(authorize::CONSENT_PATH, post(authorize::consent))
            .route(authorize::CALLBACK_PATH, get(authorize::callback));
        api.merge(pages).with_state(self.inner.clone())
    }

    /// Whether `token` is one of our access tokens (a JWT naming us as issuer) rather than a
    /// Layer PAT. Does not verify it: [`authenticate`](Self::authenticate) does.
    pub fn is_own_token(&self, token: &str) -> bool {
        token.matches('.').count() == 2
            && jwt::peek_claims(token)
                .and_then(|c| c.get("iss").and_then(|i| i.as_str()).map(str::to_owned))
                .is_some_and(|iss| iss == self.inner.config.issuer())
    }

    /// Verifies an access token (signature by one of our keys, issuer, audience = our MCP
    /// endpoint, expiry) and that its grant is still live.
    pub async fn authenticate(&self, token: &str) -> Result<OAuthCaller, AuthError> {
        let claims = verify_access_token(&self.inner, token)
            .await
            .map_err(|e| match e {
                VerifyError::Token(e) => AuthError::InvalidToken(e.to_string()),
                VerifyError::Store(e) => AuthError::from(e),
            })?;
        let grant_id = GrantId::new(claims.grant_id.clone());
        let grant = self.inner.store.get_grant(&grant_id).await?;
        match grant {
            Some(g) if g.is_live() && g.subject.as_str() == claims.sub => {}
            _ => {
                return Err(AuthError::InvalidToken(
                    "the authorization behind this token was revoked; log in again".into(),
                ));
            }
        }
        if !claims.scope.split(' ').any(|s| s == SCOPE) {
            return Err(AuthError::InsufficientScope {
                required: SCOPE.into(),
            });
        }
        Ok(OAuthCaller {
            subject: Subject::new(claims.sub),
            grant_id,
            client_id: ClientId::new(claims.client_id),
            scope: claims.scope,
            expires_at: claims.exp,
        })
    }

    /// A Layer access token for the caller's grant, refreshed at Layer if it is about to
    /// expire (once, however many calls ask at the same moment). A grant Layer no longer
    /// honours is revoked and answers `InvalidToken`.
    pub async fn upstream_token(&self, caller: &OAuthCaller) -> Result<SecretString, AuthError> {
        match self
            .inner
            .idp
            .access_token(self.inner.store.as_ref(), &caller.grant_id)
            .await
        {
            Ok(Some(token)) => Ok(token),
            Ok(None) => Err(AuthError::InvalidToken(
                "Layer no longer accepts this login; log in again".into(),
            )),
            Err(upstream::UpstreamError::Store(e)) => Err(AuthError::from(e)),
            Err(e) => {
                tracing::error!(grant = %caller.grant_id, error = %e, "cannot get a Layer token");
                Err(AuthError::Unavailable(
                    "Layer's login service is unavailable; retry shortly".into(),
                ))
            }
        }
    }

    /// Layer rejected the token [`upstream_token`](Self::upstream_token) gave for this grant
    /// (it was revoked or expired early): the next call refreshes it at Layer, and if Layer
    /// refuses that too, the grant ends and the client gets `invalid_token`.
    pub async fn upstream_rejected(&self, grant: &GrantId) {
        if let Err(e) = self
            .inner
            .idp
            .expire_access_token(self.inner.store.as_ref(), grant)
            .await
        {
            tracing::warn!(%grant, error = %e, "could not mark the Layer token as expired");
        }
    }

    /// Revokes a grant (as `/revoke` does): every token from it stops working at once.
    pub async fn revoke_grant(&self, grant: &GrantId) -> Result<bool, StoreError> {
        self.inner.store.revoke_grant(grant, now_millis()).await
    }

    /// `<origin>/.well-known/oauth-protected-resource/mcp`.
    pub fn resource_metadata_url(&self) -> String {
        self.inner.config.url(&format!(
            "/.well-known/oauth-protected-resource{}",
            self.inner.config.resource_path
        ))
    }

    /// The `WWW-Authenticate` value for a 401/403: `Bearer resource_metadata="…", scope="…"`,
    /// plus `error` and `error_description` when a token was presented and refused.
    pub fn www_authenticate(&self, error: Option<&AuthError>) -> String {
        let mut value = format!(
            "Bearer resource_metadata=\"{}\", scope=\"{SCOPE}\"",
            self.resource_metadata_url()
        );
        if let Some(e) = error
            && let Some(code) = e.challenge_error()
        {
            let description: String = e
                .to_string()
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && (' '..='~').contains(c))
                .collect();
            value.push_str(&format!(
                ", error=\"{code}\", error_description=\"{description}\""
            ));
        }
        value
    }

    /// Makes a new signing key the active one; the previous keys stay published (and
    /// verifying) until their tokens have expired. Returns the new key id.
    pub async fn rotate_signing_key(&self) -> Result<String, StartError> {
        let now = now_millis();
        let (_, record) = SigningKey::generate(&self.inner.config.encryption_key, now)?;
        self.inner.store.put_signing_key(&record).await?;
        self.inner
            .store
            .retire_signing_keys_except(&record.kid, now)
            .await?;
        reload_keys(&self.inner).await?;
        tracing::info!(kid = %record.kid, "rotated the access-token signing key");
        Ok(record.kid)
    }

    /// Removes expired state now (also done every 10 minutes in the background).
    pub async fn purge(&self) -> Result<(), StoreError> {
        purge(&self.inner).await
    }

    /// Mints an access token for a live grant (tests and tools).
    pub async fn mint_for_grant(&self, grant: &GrantId) -> Result<String, OAuthError> {
        let g = self
            .inner
            .store
            .get_grant(grant)
            .await?
            .ok_or_else(|| OAuthError::invalid_grant("unknown grant"))?;
        token::mint_access_token(&self.inner, &g)
    }
}

async fn reload_keys(inner: &Inner) -> Result<(), StartError> {
    let records = inner.store.signing_keys().await?;
    let ring = KeyRing::from_records(&inner.config.encryption_key, &records)?;
    *inner.keys.write().unwrap_or_else(|p| p.into_inner()) = ring;
    Ok(())
}

/// Why an access token could not be verified.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// The token is bad (the message is safe to show).
    Token(JwtError),
    /// Its key is unknown here and the store, where another replica may have put it, cannot
    /// be read: the client should retry, not throw its token away.
    Store(StoreError),
}

/// Verifies one of our access tokens. An unknown key id makes it re-read the keys from the
/// store first (another replica may have rotated), at most every 10 seconds once a re-read
/// succeeded.
pub(crate) async fn verify_access_token(
    inner: &Inner,
    token: &str,
) -> Result<AccessClaims, VerifyError> {
    let verify = || {
        inner.keys.read().unwrap_or_else(|p| p.into_inner()).verify(
            token,
            &inner.config.issuer(),
            &inner.config.resource(),
            now_millis(),
            inner.keep_retired_ms(),
        )
    };
    match verify() {
        Err(JwtError::UnknownKey) => {
            let mut last = inner.last_key_reload.lock().await;
            if last.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                match reload_keys(inner).await {
                    Ok(()) => *last = Some(Instant::now()),
                    Err(StartError::Store(e)) => return Err(VerifyError::Store(e)),
                    Err(e) => tracing::warn!(error = %e, "could not reload signing keys"),
                }
                drop(last);
                return verify().map_err(VerifyError::Token);
            }
            Err(VerifyError::Token(JwtError::UnknownKey))
        }
        other => other.map_err(VerifyError::Token),
    }
}

async fn purge(inner: &Inner) -> Result<(), StoreError> {
    let now = now_millis();
    let unused = i64::try_from(inner.config.client_unused_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let purged = inner
        .store
        .purge(PurgePolicy {
            now,
            clients_unused_since: now - unused,
            tombstones_before: now - 24 * 3600 * 1000,
        })
        .await?;
    let expired = inner
        .keys
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .expired_kids(now, inner.keep_retired_ms());
    for kid in &expired {
        inner.store.delete_signing_key(kid).await?;
    }
    if !expired.is_empty()
        && let Err(e) = reload_keys(inner).await
    {
        tracing::warn!(error = %e, "could not reload signing keys");
    }
    tracing::debug!(?purged, "purged expired OAuth state");
    Ok(())
}

fn spawn_purger(inner: Weak<Inner>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            if let Err(e) = purge(&inner).await {
                tracing::warn!(error = %e, "purge failed");
            }
        }
    });
}
