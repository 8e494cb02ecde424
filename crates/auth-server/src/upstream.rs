//! Layer's identity provider upstream: the gateway's own login there (authorization code +
//! PKCE with the `oauth2` crate, its confidential client), id token validation against the
//! IdP's JWKS, Layer's tokens per grant sealed at rest, and their refresh — done once per
//! grant even when many calls need it at the same moment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId as OClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use url::Url;

use crate::config::IdpConfig;
use crate::crypto::{EncryptionKey, random_token};
use crate::jwt::{JwkSet, JwtError, verify_id_token};
use crate::model::{GrantId, GrantRecord, SealedUpstream, Subject, UnixMillis, now_millis};
use crate::store::{Store, StoreError};

/// Why talking to the identity provider failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("Layer's login service cannot be reached: {0}")]
    Unreachable(String),
    #[error("Layer's login service answered unexpectedly: {0}")]
    Protocol(String),
    #[error("Layer refused: {0}")]
    Refused(String),
    #[error("Layer's id token is not valid: {0}")]
    IdToken(#[from] JwtError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The identity provider's discovery document (the fields used).
#[derive(Clone, Debug, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

/// Extra fields of the IdP's token response: the OIDC id token.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct IdTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// A grant's Layer token as the store holds it now.
enum Current {
    /// Nothing to refresh: the grant is dead (`None`) or its token is fresh enough.
    Settled(Option<SecretString>),
    /// The token needs a refresh (boxed: this is the rare path, and it goes to Layer anyway).
    Stale(Box<GrantRecord>, UpstreamTokens),
}

impl ExtraTokenFields for IdTokenFields {}

type IdpTokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;

type IdpClient = oauth2::Client<
    BasicErrorResponse,
    IdpTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Layer's tokens for one grant, as sealed in the store.
#[derive(Clone, Serialize, Deserialize)]
pub struct UpstreamTokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    pub expires_at: UnixMillis,
    /// When Layer issued the access token (0 if unknown).
    #[serde(default)]
    pub issued_at: UnixMillis,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("access_token", &"***")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The upstream login's secrets, sealed into the login record between consent and callback.
#[derive(Serialize, Deserialize)]
pub struct LoginSecrets {
    pub pkce_verifier: String,
    pub nonce: String,
}

/// What a finished upstream login yields.
#[derive(Debug)]
pub struct LoginResult {
    pub subject: Subject,
    pub tokens: UpstreamTokens,
}

/// A failure of the HTTP client handed to `oauth2`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(e.without_url().to_string()))?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| HttpError(e.without_url().to_string()))?;
    builder
        .body(bytes.to_vec())
        .map_err(|e| HttpError(e.to_string()))
}

/// The HTTP client handed to `oauth2` (reqwest 0.13, no redirects).
struct OAuthHttp(reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Layer's identity provider, as the gateway uses it.
pub struct Idp {
    config: IdpConfig,
    callback_url: String,
    http: reqwest::Client,
    oauth_http: OAuthHttp,
    key: EncryptionKey,
    discovery: RwLock<Option<Discovery>>,
    jwks: RwLock<Option<(JwkSet, Instant)>>,
    refresh_locks: Mutex<HashMap<GrantId, Arc<tokio::sync::Mutex<()>>>>,
    refresh_margin: Duration,
    /// Names this process in refresh leases.
    replica_id: String,
}

/// How long one replica may take to refresh a grant's Layer token before another may try.
const LEASE_MS: i64 = 15_000;

impl std::fmt::Debug for Idp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idp")
            .field("issuer", &self.config.issuer.as_str())
            .finish()
    }
}

fn oauth_error_text(e: &StandardErrorResponse<BasicErrorResponseType>) -> String {
    match e.error_description() {
        Some(d) => format!("{}: {d}", e.error().as_ref()),
        None => e.error().as_ref().to_owned(),
    }
}

impl Idp {
    pub fn new(
        config: IdpConfig,
        callback_url: String,
        key: EncryptionKey,
        refresh_margin: Duration,
    ) -> Result<Self, UpstreamError> {
        let http = reqwest::Client::builder()
            // oauth2's guidance: never follow redirects from a token endpoint.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        Ok(Self {
            config,
            callback_url,
            oauth_http: OAuthHttp(http.clone()),
            http,
            key,
            discovery: RwLock::new(None),
            jwks: RwLock::new(None),
            refresh_locks: Mutex::new(HashMap::new()),
            refresh_margin,
            replica_id: random_token("replica-"),
        })
    }

    pub fn issuer(&self) -> &Url {
        &self.config.issuer
    }

    /// GETs a JSON document from the IdP: a failed request is "unreachable", a body that
    /// does not parse as `what` is a protocol error.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, UpstreamError> {
        self.http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?
            .json()
            .await
            .map_err(|e| UpstreamError::Protocol(format!("{what}: {e}")))
    }

    /// The discovery document, fetched once and then cached.
    pub async fn discovery(&self) -> Result<Discovery, UpstreamError> {
        if let Some(d) = self.discovery.read().await.as_ref() {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.as_str().trim_end_matches('/')
        );
        let doc: Discovery = self.get_json(&url, "discovery document").await?;
        if doc.issuer.trim_end_matches('/') != self.config.issuer.as_str().trim_end_matches('/') {
            return Err(UpstreamError::Protocol(format!(
                "discovery names issuer {:?}, expected {:?}",
                doc.issuer,
                self.config.issuer.as_str()
            )));
        }
        *self.discovery.write().await = Some(doc.clone());
        Ok(doc)
    }

    async fn jwks(&self, force: bool) -> Result<JwkSet, UpstreamError> {
        if !force
            && let Some((set, fetched)) = self.jwks.read().await.as_ref()
            && fetched.elapsed() < Duration::from_secs(3600)
        {
            return Ok(set.clone());
        }
        let discovery = self.discovery().await?;
        let set: JwkSet = self.get_json(&discovery.jwks_uri, "JWKS").await?;
        *self.jwks.write().await = Some((set.clone(), Instant::now()));
        Ok(set)
    }

    fn client(&self, d: &Discovery) -> Result<IdpClient, UpstreamError> {
        let bad = |e: url::ParseError| UpstreamError::Protocol(e.to_string());
        Ok(
            oauth2::Client::new(OClientId::new(self.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(
                    self.config.client_secret.expose_secret().to_owned(),
                ))
                .set_auth_uri(AuthUrl::new(d.authorization_endpoint.clone()).map_err(bad)?)
                .set_token_uri(TokenUrl::new(d.token_endpoint.clone()).map_err(bad)?)
                .set_redirect_uri(RedirectUrl::new(self.callback_url.clone()).map_err(bad)?),
        )
    }

    /// Starts a login: the URL to send the browser to, and the sealed secrets to keep until
    /// the callback (context: the state hash).
    pub async fn begin_login(
        &self,
        state: &str,
        seal_context: &str,
    ) -> Result<(Url, Vec<u8>), UpstreamError> {
        let discovery = self.discovery().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = random_token("");
        let client = self.client(&discovery)?;
        let mut request = client
            .authorize_url(|| CsrfToken::new(state.to_owned()))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.clone())
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new));
        if let Some(audience) = &self.config.audience {
            request = request.add_extra_param("audience", audience.clone());
        }
        let (url, _) = request.url();
        let secrets = LoginSecrets {
            pkce_verifier: verifier.secret().clone(),
            nonce,
        };
        let plain =
            serde_json::to_vec(&secrets).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        Ok((url, self.key.seal(seal_context, &plain)))
    }

    /// Finishes a login: exchanges the code, validates the id token, returns the user and
    /// Layer's tokens.
    pub async fn finish_login(
        &self,
        code: &str,
        sealed_secrets: &[u8],
        seal_context: &str,
    ) -> Result<LoginResult, UpstreamError> {
        let plain = self
            .key
            .open(seal_context, sealed_secrets)
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let secrets: LoginSecrets =
            serde_json::from_slice(&plain).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let discovery = self.discovery().await?;
        let client = self.client(&discovery)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(secrets.pkce_verifier))
            .request_async(&self.oauth_http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => {
                    UpstreamError::Refused(oauth_error_text(&r))
                }
                RequestTokenError::Request(e) => UpstreamError::Unreachable(e.to_string()),
                other => UpstreamError::Protocol(other.to_string()),
            })?;
        let id_token =
            response.extra_fields().id_token.clone().ok_or_else(|| {
                UpstreamError::Protocol("no id_token in the token response".into())
            })?;
        let now_secs = now_millis() / 1000;
        let verify = |jwks: &JwkSet| {
            verify_id_token(
                &id_token,
                jwks,
                &discovery.issuer,
                &self.config.client_id,
                &secrets.nonce,
                now_secs,
            )
        };
        let claims = match verify(&self.jwks(false).await?) {
            // The IdP may have rotated its keys since we cached them.
            Err(JwtError::UnknownKey) => verify(&self.jwks(true).await?)?,
            other => other?,
        };
        let subject = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| UpstreamError::Protocol("the id token has no subject".into()))?;
        Ok(LoginResult {
            subject: Subject::new(subject),
            tokens: tokens_from(&response, None),
        })
    }

    pub fn seal(&self, grant: &GrantId, tokens: &UpstreamTokens, version: i64) -> SealedUpstream {
        let plain = serde_json::to_vec(tokens).unwrap_or_default();
        SealedUpstream {
            sealed: self.key.seal(&format!("grant:{grant}"), &plain),
            access_expires_at: tokens.expires_at,
            version,
        }
    }

    pub fn open(&self, grant: &GrantRecord) -> Result<UpstreamTokens, UpstreamError> {
        let plain = self
            .key
            .open(&format!("grant:{}", grant.id), &grant.upstream.sealed)
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        serde_json::from_slice(&plain).map_err(|e| UpstreamError::Protocol(e.to_string()))
    }

    /// Good for a while yet: refreshed `refresh_margin` before expiry, or at half its life
    /// when Layer's tokens live shorter than twice the margin.
    fn fresh(&self, tokens: &UpstreamTokens, now: UnixMillis) -> bool {
        let margin = i64::try_from(self.refresh_margin.as_millis()).unwrap_or(0);
        let lifetime = tokens.expires_at - tokens.issued_at;
        tokens.expires_at - margin.min(lifetime / 2) > now
    }

    fn lock_for(&self, grant: &GrantId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.refresh_locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(grant.clone()).or_default().clone()
    }

    /// Reads the grant and tells whether Layer's token can be answered as it is.
    async fn current(
        &self,
        store: &dyn Store,
        grant_id: &GrantId,
    ) -> Result<Current, UpstreamError> {
        let Some(grant) = store
            .get_grant(grant_id)
            .await?
            .filter(GrantRecord::is_live)
        else {
            return Ok(Current::Settled(None));
        };
        let tokens = self.open(&grant)?;
        if self.fresh(&tokens, now_millis()) {
            return Ok(Current::Settled(Some(SecretString::from(
                tokens.access_token,
            ))));
        }
        Ok(Current::Stale(Box::new(grant), tokens))
    }

    /// A Layer access token for `grant` that is good for at least the refresh margin,
    /// refreshing it at Layer when needed. Concurrent callers for one grant wait for a
    /// single refresh (a per-grant lock here; across replicas the store's compare-and-swap
    /// makes the losers re-read). `Ok(None)` means the grant is dead (revoked, or Layer
    /// refused the refresh — the grant is then revoked).
    pub async fn access_token(
        &self,
        store: &dyn Store,
        grant_id: &GrantId,
    ) -> Result<Option<SecretString>, UpstreamError> {
        if let Current::Settled(token) = self.current(store, grant_id).await? {
            return Ok(token);
        }
        let lock = self.lock_for(grant_id);
        let _guard = lock.lock().await;
        // Someone may have refreshed while this call waited.
        let tokens = match self.current(store, grant_id).await? {
            Current::Settled(token) => return Ok(token),
            Current::Stale(_, tokens) => tokens,
        };
        if tokens.refresh_token.is_none() {
            tracing::info!(grant = %grant_id, "Layer token expired and there is no refresh token");
            store.revoke_grant(grant_id, now_millis()).await?;
            return Ok(None);
        }
        // Across replicas: one holds the lease and calls Layer; the others wait for its result.
        // (Calling Layer twice with one refresh token would look like a replay to Layer.)
        if !store
            .lease_upstream_refresh(grant_id, &self.replica_id, now_millis(), LEASE_MS)
            .await?
        {
            return self.wait_for_other_replica(store, grant_id).await;
        }
        // Re-read under the lease: another replica may have refreshed just before.
        let result = match self.current(store, grant_id).await? {
            Current::Settled(token) => Ok(token),
            Current::Stale(grant, t) => match t.refresh_token {
                Some(refresh) => self.refresh_at_layer(store, &grant, &refresh).await,
                None => Ok(None),
            },
        };
        if let Err(e) = store
            .release_upstream_refresh(grant_id, &self.replica_id)
            .await
        {
            tracing::warn!(grant = %grant_id, error = %e, "could not release the refresh lease");
        }
        result
    }

    /// Another replica is refreshing this grant: re-read until its new token is there.
    async fn wait_for_other_replica(
        &self,
        store: &dyn Store,
        grant_id: &GrantId,
    ) -> Result<Option<SecretString>, UpstreamError> {
        let deadline = std::time::Instant::now() + Duration::from_millis(LEASE_MS as u64);
        while std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Current::Settled(token) = self.current(store, grant_id).await? {
                return Ok(token);
            }
        }
        Err(UpstreamError::Unreachable(
            "another gateway replica did not finish refreshing the Layer token".into(),
        ))
    }

    async fn refresh_at_layer(
        &self,
        store: &dyn Store,
        grant: &GrantRecord,
        refresh: &str,
    ) -> Result<Option<SecretString>, UpstreamError> {
        let grant_id = &grant.id;
        let discovery = self.discovery().await?;
        let client = self.client(&discovery)?;
        let result = client
            .exchange_refresh_token(&RefreshToken::new(refresh.to_owned()))
            .request_async(&self.oauth_http)
            .await;
        let response = match result {
            Ok(r) => r,
            Err(RequestTokenError::ServerResponse(r)) => {
                tracing::warn!(
                    grant = %grant_id,
                    error = %oauth_error_text(&r),
                    "Layer refused to refresh; revoking the grant"
                );
                store.revoke_grant(grant_id, now_millis()).await?;
                return Ok(None);
            }
            Err(RequestTokenError::Request(e)) => {
                return Err(UpstreamError::Unreachable(e.to_string()));
            }
            Err(other) => return Err(UpstreamError::Protocol(other.to_string())),
        };
        let new_tokens = tokens_from(&response, Some(refresh.to_owned()));
        let sealed = self.seal(grant_id, &new_tokens, grant.upstream.version + 1);
        if store
            .swap_upstream(grant_id, grant.upstream.version, &sealed)
            .await?
        {
            tracing::info!(grant = %grant_id, "refreshed the Layer token");
            return Ok(Some(SecretString::from(new_tokens.access_token)));
        }
        // Another replica refreshed first: use what it stored.
        let Some(grant) = store
            .get_grant(grant_id)
            .await?
            .filter(GrantRecord::is_live)
        else {
            return Ok(None);
        };
        Ok(Some(SecretString::from(self.open(&grant)?.access_token)))
    }

    /// Marks Layer's access token for a grant as expired (Layer rejected it before its
    /// time), so the next call refreshes it; a refused refresh then ends the grant.
    pub async fn expire_access_token(
        &self,
        store: &dyn Store,
        grant_id: &GrantId,
    ) -> Result<(), UpstreamError> {
        let Some(grant) = store
            .get_grant(grant_id)
            .await?
            .filter(GrantRecord::is_live)
        else {
            return Ok(());
        };
        let mut tokens = self.open(&grant)?;
        tokens.expires_at = tokens.issued_at.min(now_millis());
        let sealed = self.seal(grant_id, &tokens, grant.upstream.version + 1);
        store
            .swap_upstream(grant_id, grant.upstream.version, &sealed)
            .await?;
        Ok(())
    }

    /// Revokes Layer's refresh token for a grant at the IdP (best effort).
    pub async fn revoke_upstream(&self, grant: &GrantRecord) {
        let Ok(tokens) = self.open(grant) else { return };
        let Some(refresh) = tokens.refresh_token else {
            return;
        };
        let Ok(discovery) = self.discovery().await else {
            return;
        };
        let Some(endpoint) = discovery.revocation_endpoint else {
            return;
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", &refresh)
            .append_pair("token_type_hint", "refresh_token")
            .finish();
        let result = self
            .http
            .post(endpoint)
            .basic_auth(
                &self.config.client_id,
                Some(self.config.client_secret.expose_secret()),
            )
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(grant = %grant.id, error = %e.without_url(), "could not revoke the Layer token");
        }
    }
}

fn tokens_from(response: &IdpTokenResponse, previous_refresh: Option<String>) -> UpstreamTokens {
    // Without expires_in, assume an hour: a too-early refresh costs little.
    let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3600));
    UpstreamTokens {
        access_token: response.access_token().secret().clone(),
        refresh_token: response
            .refresh_token()
            .map(|t| t.secret().clone())
            .or(previous_refresh),
        expires_at: now_millis() + i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX / 2),
        issued_at: now_millis(),
    }
}
