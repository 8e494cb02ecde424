//! Clients: Dynamic Client Registration (RFC 7591) with a per-address rate limit, Client ID
//! Metadata Documents (fetched SSRF-guarded, validated, cached), and client authentication
//! at the token endpoint.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::AppState;
use crate::crypto::{constant_time_eq, random_token, token_hash};
use crate::error::{ErrorCode, OAuthError};
use crate::model::{ClientAuthMethod, ClientId, ClientKind, ClientRecord, now_millis};
use crate::uris::validate_redirect_uri;

/// Fetches a Client ID Metadata Document. The production implementation goes through
/// `safe-fetch` (public addresses only, size and time capped); tests inject others.
#[async_trait::async_trait]
pub trait ClientMetadataFetcher: Send + Sync + 'static {
    /// The parsed JSON at `url`, or why it could not be had (shown on the error page).
    async fn fetch(&self, url: &Url) -> Result<Value, String>;
}

/// Refuses every fetch: Client ID Metadata Documents disabled.
#[derive(Debug, Clone, Copy)]
pub struct RefuseAllFetcher;

#[async_trait::async_trait]
impl ClientMetadataFetcher for RefuseAllFetcher {
    async fn fetch(&self, _url: &Url) -> Result<Value, String> {
        Err("this server does not fetch client metadata documents".into())
    }
}

/// Fetches metadata documents through `safe-fetch`: https only, public addresses only (every
/// resolved address checked, the connection pinned to it), no redirects, JSON only, 64 KiB and
/// 5 s at most.
pub struct SafeMetadataFetcher {
    fetcher: safe_fetch::SafeFetcher,
}

impl SafeMetadataFetcher {
    pub fn new(policy: safe_fetch::FetchPolicy) -> Self {
        Self {
            fetcher: safe_fetch::SafeFetcher::new(policy),
        }
    }

    /// Wraps a configured fetcher (tests inject a resolver and an allow-list).
    pub fn from_fetcher(fetcher: safe_fetch::SafeFetcher) -> Self {
        Self { fetcher }
    }

    /// The policy used by default.
    pub fn default_policy() -> safe_fetch::FetchPolicy {
        safe_fetch::FetchPolicy::default()
            .https_only(true)
            .json_max_bytes(64 * 1024)
            .timeout(Duration::from_secs(5))
            .user_agent("layer-mcp-gateway (client metadata)")
    }
}

impl Default for SafeMetadataFetcher {
    fn default() -> Self {
        Self::new(Self::default_policy())
    }
}

#[async_trait::async_trait]
impl ClientMetadataFetcher for SafeMetadataFetcher {
    async fn fetch(&self, url: &Url) -> Result<Value, String> {
        self.fetcher
            .fetch_json::<Value>(url.as_str())
            .await
            .map(|doc| doc.value)
            .map_err(|e| e.to_string())
    }
}

/// Why a client id does not name a usable client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientLookupError {
    #[error("unknown client {0:?}: register it first (POST /register)")]
    Unknown(String),
    #[error("the client metadata document at {url} cannot be used: {reason}")]
    BadMetadataDocument { url: String, reason: String },
    #[error("the authorization server's storage is unavailable")]
    Unavailable,
}

/// A sliding-window count of registrations per source address.
#[derive(Debug)]
pub struct RegistrationLimiter {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RegistrationLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one registration from `addr`; `Err(seconds to wait)` when over the limit.
    pub fn check(&self, addr: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = seen.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            let wait = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(wait.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The address a request came from: `X-Forwarded-For`'s first entry behind a trusted proxy,
/// else the TCP peer (when the server was started with connect info).
pub fn source_address(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trust_forwarded_for: bool,
) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    peer.map(|p| p.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// RFC 7591 registration request (the fields this server reads).
#[derive(Debug, Deserialize)]
pub struct RegistrationRequest {
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    client_uri: Option<String>,
}

fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// A display name a client chose: trimmed, control characters dropped, at most 100 chars.
fn clean_name(name: Option<&str>) -> Option<String> {
    let cleaned: String = name?
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect::<String>()
        .trim()
        .to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

fn clean_client_uri(uri: Option<&str>) -> Option<String> {
    let url = Url::parse(uri?).ok()?;
    (url.scheme() == "https").then(|| url.to_string())
}

/// Validates the shared parts of DCR metadata and of metadata documents.
fn validate_common(
    redirect_uris: Option<&[String]>,
    grant_types: Option<&[String]>,
    response_types: Option<&[String]>,
) -> Result<Vec<String>, OAuthError> {
    let uris = redirect_uris.unwrap_or_default();
    if uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "redirect_uris is required: at least one https or loopback URI",
        ));
    }
    if uris.len() > 20 {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "at most 20 redirect_uris",
        ));
    }
    for uri in uris {
        validate_redirect_uri(uri)
            .map_err(|e| OAuthError::new(ErrorCode::InvalidRedirectUri, e.to_string()))?;
    }
    if let Some(grants) = grant_types
        && let Some(bad) = grants
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(metadata_error(format!(
            "grant type {bad:?} is not supported; use authorization_code and refresh_token"
        )));
    }
    if let Some(types) = response_types
        && let Some(bad) = types.iter().find(|t| t.as_str() != "code")
    {
        return Err(metadata_error(format!(
            "response type {bad:?} is not supported; use code"
        )));
    }
    Ok(uris.to_vec())
}

/// `POST /register`.
pub async fn register(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    // The peer address is there when the server was started with connect info.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let headers = request.headers().clone();
    let body = match axum::body::to_bytes(request.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return metadata_error("the registration request is larger than 64 KiB")
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                .into_response();
        }
    };
    match register_inner(&state, peer, &headers, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn register_inner(
    state: &AppState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let addr = source_address(headers, peer, state.config.trust_forwarded_for);
    let request: RegistrationRequest = serde_json::from_slice(body).map_err(|e| {
        metadata_error(format!(
            "the body must be a JSON client metadata object: {e}"
        ))
    })?;
    let redirect_uris = validate_common(
        request.redirect_uris.as_deref(),
        request.grant_types.as_deref(),
        request.response_types.as_deref(),
    )?;
    // RFC 7591 §2: absent means client_secret_basic.
    let method_name = request
        .token_endpoint_auth_method
        .as_deref()
        .unwrap_or("client_secret_basic");
    let auth_method = ClientAuthMethod::parse(method_name).ok_or_else(|| {
        metadata_error(format!(
            "token_endpoint_auth_method {method_name:?} is not supported; \
             use none, client_secret_post or client_secret_basic"
        ))
    })?;
    // Count only well-formed registrations, so a client fixing its request is not punished.
    if let Err(wait) = state.registrations.check(addr) {
        tracing::warn!(%addr, "client registration rate limit reached");
        return Err(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many client registrations from this address; retry in {wait} s"),
        )
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .retry_after(wait));
    }
    let now = now_millis();
    let id = ClientId::new(random_token("lmc_"));
    let secret = (auth_method != ClientAuthMethod::None).then(|| random_token("lms_"));
    let record = ClientRecord {
        id: id.clone(),
        kind: ClientKind::Dynamic,
        secret_hash: secret.as_ref().map(|s| token_hash("client-secret", s)),
        auth_method,
        redirect_uris: redirect_uris.clone(),
        name: clean_name(request.client_name.as_deref()),
        client_uri: clean_client_uri(request.client_uri.as_deref()),
        created_at: now,
        last_used_at: now,
        refresh_after: None,
    };
    state.store.put_client(&record).await?;
    tracing::info!(client_id = ?id, method = auth_method.as_str(), "registered a client");
    let mut body = json!({
        "client_id": id.as_str(),
        "client_id_issued_at": now / 1000,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": auth_method.as_str(),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(secret) = secret {
        body["client_secret"] = json!(secret);
        body["client_secret_expires_at"] = json!(0);
    }
    if let Some(name) = &record.name {
        body["client_name"] = json!(name);
    }
    if let Some(uri) = &record.client_uri {
        body["client_uri"] = json!(uri);
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// Whether a client id is a Client ID Metadata Document URL (rather than a registered id).
pub fn is_metadata_document_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// The URL rules for a metadata-document client id (draft-ietf-oauth-client-id-metadata-
/// document §3): https, a path, no fragment, no credentials, no dot segments.
pub fn validate_metadata_document_url(client_id: &str) -> Result<Url, String> {
    let url = Url::parse(client_id).map_err(|_| "the client_id is not a valid URL".to_owned())?;
    if url.scheme() != "https" {
        return Err("a client_id URL must use https".into());
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("a client_id URL must not have a fragment or credentials".into());
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err("a client_id URL must have a path".into());
    }
    if client_id
        .split(['/', '?'])
        .any(|seg| seg == "." || seg == "..")
    {
        return Err("a client_id URL must not contain dot segments".into());
    }
    if url.as_str() != client_id {
        return Err("a client_id URL must be in normal form".into());
    }
    Ok(url)
}

/// Validates a fetched metadata document for `url` and turns it into a client record.
pub fn client_from_document(
    url: &Url,
    doc: &Value,
    now: i64,
    ttl: Duration,
) -> Result<ClientRecord, String> {
    let obj = doc.as_object().ok_or("the document is not a JSON object")?;
    if obj.get("client_id").and_then(Value::as_str) != Some(url.as_str()) {
        return Err("its client_id does not equal its URL".into());
    }
    if obj.contains_key("client_secret") || obj.contains_key("client_secret_expires_at") {
        return Err("it must not contain a client secret".into());
    }
    let method = obj
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none");
    if method != "none" {
        return Err(format!(
            "token_endpoint_auth_method {method:?} is not supported for metadata documents; use none"
        ));
    }
    let strings = |key: &str| -> Result<Option<Vec<String>>, String> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|_| format!("{key} must be an array of strings")),
        }
    };
    let redirect_uris = validate_common(
        strings("redirect_uris")?.as_deref(),
        strings("grant_types")?.as_deref(),
        strings("response_types")?.as_deref(),
    )
    .map_err(|e| e.description)?;
    Ok(ClientRecord {
        id: ClientId::new(url.as_str()),
        kind: ClientKind::MetadataDocument,
        secret_hash: None,
        auth_method: ClientAuthMethod::None,
        redirect_uris,
        name: clean_name(obj.get("client_name").and_then(Value::as_str)),
        client_uri: clean_client_uri(obj.get("client_uri").and_then(Value::as_str)),
        created_at: now,
        last_used_at: now,
        refresh_after: Some(now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
    })
}

/// Finds the client a `client_id` names: a registered client that has not expired, or a
/// metadata document (from the cache while fresh, else fetched and validated again).
pub async fn resolve_client(
    state: &AppState,
    client_id: &str,
) -> Result<ClientRecord, ClientLookupError> {
    let now = now_millis();
    let unused_ms = i64::try_from(state.config.client_unused_ttl.as_millis()).unwrap_or(i64::MAX);
    let cached = state
        .store
        .get_client(&ClientId::new(client_id))
        .await
        .map_err(|_| ClientLookupError::Unavailable)?;
    if !is_metadata_document_id(client_id) {
        return match cached {
            Some(c) if c.kind == ClientKind::Dynamic && c.last_used_at + unused_ms > now => Ok(c),
            _ => Err(ClientLookupError::Unknown(client_id.to_owned())),
        };
    }
    if let Some(c) = cached
        && c.kind == ClientKind::MetadataDocument
        && c.refresh_after.is_some_and(|t| t > now)
    {
        return Ok(c);
    }
    let bad = |reason: String| ClientLookupError::BadMetadataDocument {
        url: client_id.to_owned(),
        reason,
    };
    let url = validate_metadata_document_url(client_id).map_err(bad)?;
    let doc = state
        .config
        .metadata_fetcher
        .fetch(&url)
        .await
        .map_err(bad)?;
    let record =
        client_from_document(&url, &doc, now, state.config.metadata_document_ttl).map_err(bad)?;
    state
        .store
        .put_client(&record)
        .await
        .map_err(|_| ClientLookupError::Unavailable)?;
    tracing::info!(client_id, "fetched a client metadata document");
    Ok(record)
}

/// Credentials a client presented at the token or revocation endpoint.
#[derive(Debug, Default)]
pub struct PresentedClient {
    pub client_id: Option<String>,
    pub secret: Option<SecretString>,
    pub used_basic: bool,
}

/// Reads client credentials from HTTP Basic (RFC 6749 §2.3.1, form-urlencoded parts) or the
/// form body (`client_id`, `client_secret`).
pub fn presented_client(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<PresentedClient, OAuthError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
        if let Some((scheme, rest)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("basic")
        {
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    OAuthError::invalid_client("malformed Basic credentials")
                        .with_basic_challenge(true)
                })?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| {
                OAuthError::invalid_client("malformed Basic credentials").with_basic_challenge(true)
            })?;
            let unescape = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            return Ok(PresentedClient {
                client_id: Some(unescape(id)),
                secret: Some(SecretString::from(unescape(secret))),
                used_basic: true,
            });
        }
    }
    Ok(PresentedClient {
        client_id: form.get("client_id").cloned(),
        secret: form
            .get("client_secret")
            .map(|s| SecretString::from(s.as_str())),
        used_basic: false,
    })
}

/// Authenticates a client at the token/revocation endpoint. Confidential clients must show
/// their secret (by Basic or in the body, whichever they registered or not: both are safe
/// over TLS); public clients are identified by `client_id` alone (PKCE protects the code).
pub async fn authenticate_client(
    state: &AppState,
    presented: &PresentedClient,
) -> Result<ClientRecord, OAuthError> {
    let basic = presented.used_basic;
    let id = presented.client_id.as_deref().ok_or_else(|| {
        OAuthError::invalid_client("client authentication is required: send client_id")
    })?;
    let client = resolve_client(state, id).await.map_err(|e| match e {
        ClientLookupError::Unavailable => {
            OAuthError::unavailable("the authorization server's storage is unavailable")
        }
        other => OAuthError::invalid_client(other.to_string()).with_basic_challenge(basic),
    })?;
    if let Some(expected) = &client.secret_hash {
        let given = presented.secret.as_ref().ok_or_else(|| {
            OAuthError::invalid_client("this client must authenticate with its client_secret")
                .with_basic_challenge(basic)
        })?;
        let given_hash = token_hash("client-secret", given.expose_secret());
        if !constant_time_eq(given_hash.as_bytes(), expected.as_bytes()) {
            return Err(OAuthError::invalid_client("client authentication failed")
                .with_basic_challenge(basic));
        }
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_address() {
        let l = RegistrationLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_ok());
        assert!(l.check(a).unwrap_err() >= 1);
        assert!(l.check(b).is_ok());
    }

    #[test]
    fn metadata_document_urls() {
        assert!(
            validate_metadata_document_url("https://claude.ai/oauth/claude-code-client-metadata")
                .is_ok()
        );
        for bad in [
            "http://claude.ai/meta",
            "https://claude.ai/",
            "https://claude.ai/a/../b",
            "https://user@claude.ai/meta",
            "https://claude.ai/meta#x",
        ] {
            assert!(validate_metadata_document_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_documents_must_name_themselves() {
        let url = Url::parse("https://app.example/client.json").unwrap();
        let good = json!({
            "client_id": "https://app.example/client.json",
            "client_name": "Example\u{7} App",
            "redirect_uris": ["http://localhost:5555/callback"],
        });
        let c = client_from_document(&url, &good, 0, Duration::from_secs(60)).unwrap();
        assert_eq!(c.name.as_deref(), Some("Example App"));
        assert_eq!(c.refresh_after, Some(60_000));
        let mut other = good.clone();
        other["client_id"] = json!("https://evil.example/client.json");
        assert!(client_from_document(&url, &other, 0, Duration::from_secs(60)).is_err());
        let mut secret = good.clone();
        secret["token_endpoint_auth_method"] = json!("client_secret_post");
        assert!(client_from_document(&url, &secret, 0, Duration::from_secs(60)).is_err());
        let mut redirect = good;
        redirect["redirect_uris"] = json!(["http://evil.example/cb"]);
        assert!(client_from_document(&url, &redirect, 0, Duration::from_secs(60)).is_err());
    }
}
