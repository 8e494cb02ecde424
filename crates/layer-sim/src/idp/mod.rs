//! An Auth0-shaped OAuth 2.0 / OpenID Connect provider on the simulator's listener: discovery,
//! JWKS, `/authorize` with a plain HTML login form, `/oauth/token` (authorization code with
//! PKCE S256, refresh tokens rotated on every use with reuse detection), `/oauth/revoke`,
//! `/userinfo`.

pub mod jwt;
mod pages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::api::query_pairs;
use crate::auth::{access_token_user, bearer};
use crate::fixtures::OAuthClientFixture;
use crate::secret::constant_time_eq;
use crate::state::{Inner, Sim, UserIdx};

/// How long a login form and an authorization code stay valid.
const LOGIN_TTL: Duration = Duration::from_secs(10 * 60);
const CODE_TTL: Duration = Duration::from_secs(5 * 60);

pub fn router() -> Router<Arc<Sim>> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/authorize", get(authorize))
        .route("/u/login", post(login))
        .route("/oauth/token", post(token))
        .route("/oauth/revoke", post(revoke))
        .route("/userinfo", get(userinfo).post(userinfo))
}

/// The parameters of an `/authorize` request, kept while the user signs in.
#[derive(Clone, Debug)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    scope: String,
    audience: String,
    code_challenge: String,
}

#[derive(Debug)]
struct LoginTx {
    request: Pending,
    created: Instant,
}

#[derive(Debug)]
struct AuthCode {
    request: Pending,
    user: UserIdx,
    created: Instant,
    used: bool,
    /// Refresh-token family issued from this code, revoked if the code is replayed.
    family: Option<String>,
}

#[derive(Debug)]
struct RefreshRec {
    family: String,
    user: UserIdx,
    client_id: String,
    scope: String,
    audience: String,
    created: DateTime<Utc>,
    rotated: bool,
}

/// The IdP's memory, inside the simulator's state.
#[derive(Debug, Default)]
pub struct IdpState {
    logins: HashMap<String, LoginTx>,
    codes: HashMap<String, AuthCode>,
    refresh: HashMap<String, RefreshRec>,
    revoked_families: std::collections::HashSet<String>,
}

impl IdpState {
    /// Refresh-token families and whether each is live, for `/_sim/state`.
    pub fn families(&self, sim: &Sim) -> Vec<Value> {
        let mut by_family: HashMap<&str, (&RefreshRec, usize)> = HashMap::new();
        for rec in self.refresh.values() {
            let e = by_family.entry(&rec.family).or_insert((rec, 0));
            e.1 += 1;
        }
        let mut out: Vec<Value> = by_family
            .into_iter()
            .map(|(family, (rec, n))| {
                json!({
                    "family": family,
                    "user": sim.login(rec.user),
                    "client_id": rec.client_id,
                    "refresh_tokens_issued": n,
                    "revoked": self.revoked_families.contains(family),
                })
            })
            .collect();
        out.sort_by(|a, b| a["family"].as_str().cmp(&b["family"].as_str()));
        out
    }
}

/// What a login form or an authorization code records of its creation.
trait Created {
    fn created(&self) -> Instant;
}

impl Created for LoginTx {
    fn created(&self) -> Instant {
        self.created
    }
}

impl Created for AuthCode {
    fn created(&self) -> Instant {
        self.created
    }
}

/// Inserts a login form or code, first forgetting those older than [`LOGIN_TTL`].
fn insert_fresh<T: Created>(map: &mut HashMap<String, T>, key: String, value: T) {
    map.retain(|_, t| t.created().elapsed() < LOGIN_TTL);
    map.insert(key, value);
}

/// The fixture users' logins, listed on the login page.
fn user_logins(sim: &Sim) -> Vec<&str> {
    sim.fixtures
        .users
        .iter()
        .map(|u| u.login.as_str())
        .collect()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if error == "invalid_client" {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="layer-sim""#),
        );
    }
    response
}

async fn discovery(State(sim): State<Arc<Sim>>) -> Response {
    let base = &sim.public;
    axum::Json(json!({
        "issuer": sim.issuer(),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "name", "nickname", "nonce", "sub"],
        "request_uri_parameter_supported": false,
    }))
    .into_response()
}

async fn jwks(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.keys.jwks()).into_response()
}

fn is_loopback(host: Option<url::Host<&str>>) -> bool {
    match host {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Exact match, except that loopback URIs match on any port (RFC 8252 section 7.3).
pub fn redirect_allowed(registered: &[String], extra: &[String], candidate: &str) -> bool {
    let Ok(cand) = url::Url::parse(candidate) else {
        return false;
    };
    if cand.fragment().is_some() {
        return false;
    }
    registered.iter().chain(extra).any(|r| {
        let Ok(reg) = url::Url::parse(r) else {
            return false;
        };
        if reg.as_str() == cand.as_str() {
            return true;
        }
        is_loopback(reg.host())
            && reg.scheme() == cand.scheme()
            && reg.host_str() == cand.host_str()
            && reg.path() == cand.path()
            && reg.query() == cand.query()
    })
}

fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return pages::error_page(StatusCode::BAD_REQUEST, "Invalid redirect URI."),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

async fn authorize(State(sim): State<Arc<Sim>>, raw: RawQuery) -> Response {
    let pairs = query_pairs(&raw);
    let q = |k: &str| crate::api::query_one(&pairs, k).map(str::to_owned);
    let Some(client) = q("client_id").and_then(|id| sim.fixtures.oauth_client(&id).cloned()) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown client: this application is not registered.",
        );
    };
    let Some(redirect_uri) = q("redirect_uri")
        .filter(|r| redirect_allowed(&client.redirect_uris, &sim.config.extra_redirect_uris, r))
    else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "The redirect_uri is missing or not registered for this application.",
        );
    };
    let state = q("state");
    let fail = |error: &str, description: &str| {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(s) = state.as_deref() {
            params.push(("state", s));
        }
        redirect_with(&redirect_uri, &params)
    };
    if q("response_type").as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "Only response_type=code is supported.",
        );
    }
    let Some(challenge) = q("code_challenge").filter(|c| !c.is_empty()) else {
        return fail(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256.",
        );
    };
    if q("code_challenge_method").as_deref() != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256.");
    }
    let audience = q("audience").unwrap_or_else(|| sim.fixtures.api_audience.clone());
    if audience != sim.fixtures.api_audience {
        return fail("access_denied", &format!("Service not found: {audience}"));
    }
    // The simulator keeps no browser session, so a silent authorization can never succeed.
    if q("prompt").as_deref() == Some("none") {
        return fail("login_required", "The user is not signed in.");
    }
    let scope = q("scope").unwrap_or_else(|| "openid".into());
    let tx_id = sim.ids.token("login");
    let request = Pending {
        client_id: client.client_id.clone(),
        redirect_uri,
        state,
        nonce: q("nonce"),
        scope,
        audience,
        code_challenge: challenge,
    };
    let mut inner = sim.lock();
    insert_fresh(
        &mut inner.idp.logins,
        tx_id.clone(),
        LoginTx {
            request,
            created: Instant::now(),
        },
    );
    let logins = user_logins(&sim);
    pages::login_page(
        StatusCode::OK,
        &client.name,
        &tx_id,
        q("login_hint").as_deref(),
        None,
        &logins,
    )
}

async fn login(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let tx_id = field("tx");
    let mut inner = sim.lock();
    let Some(tx) = inner
        .idp
        .logins
        .get(tx_id)
        .filter(|t| t.created.elapsed() < LOGIN_TTL)
    else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in page has expired. Go back to the application and start again.",
        );
    };
    let username = field("username").trim();
    let user = sim.fixtures.users.iter().position(|u| {
        (u.login == username || u.email.eq_ignore_ascii_case(username))
            && constant_time_eq(
                u.password.expose_secret().as_bytes(),
                field("password").as_bytes(),
            )
    });
    let Some(user) = user.map(UserIdx) else {
        let client_name = sim
            .fixtures
            .oauth_client(&tx.request.client_id)
            .map_or("Layer", |c| c.name.as_str())
            .to_owned();
        let logins = user_logins(&sim);
        return pages::login_page(
            StatusCode::UNAUTHORIZED,
            &client_name,
            tx_id,
            Some(username),
            Some("Wrong username or password."),
            &logins,
        );
    };
    let Some(tx) = inner.idp.logins.remove(tx_id) else {
        return pages::error_page(StatusCode::BAD_REQUEST, "This sign-in page has expired.");
    };
    let code = sim.ids.token("code");
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = tx.request.state.as_deref() {
        params.push(("state", s));
    }
    let response = redirect_with(&tx.request.redirect_uri, &params);
    insert_fresh(
        &mut inner.idp.codes,
        code.clone(),
        AuthCode {
            request: tx.request,
            user,
            created: Instant::now(),
            used: false,
            family: None,
        },
    );
    response
}

/// Form or JSON body of a token or revoke request.
fn params(headers: &HeaderMap, body: &Bytes) -> HashMap<String, String> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        serde_json::from_slice::<serde_json::Map<String, Value>>(body)
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    }
}

/// Authenticates the client: Basic header, secret in the body, or a public client by id.
fn client_auth(
    sim: &Sim,
    headers: &HeaderMap,
    p: &HashMap<String, String>,
) -> Result<OAuthClientFixture, Box<Response>> {
    let invalid = || {
        Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        ))
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            let decode = |x: &str| {
                url::form_urlencoded::parse(format!("x={x}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    let (client_id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            p.get("client_id").cloned().unwrap_or_default(),
            p.get("client_secret").cloned(),
        ),
    };
    let client = sim
        .fixtures
        .oauth_client(&client_id)
        .cloned()
        .ok_or_else(invalid)?;
    match (&client.client_secret, secret) {
        (Some(expected), Some(given))
            if constant_time_eq(expected.expose_secret().as_bytes(), given.as_bytes()) =>
        {
            Ok(client)
        }
        (None, None) => Ok(client),
        _ => Err(invalid()),
    }
}

fn pkce_ok(challenge: &str, verifier: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed
        && constant_time_eq(
            B64.encode(Sha256::digest(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
}

/// Mints an access token (and id and refresh tokens as the scope asks) for a user.
/// What a token response is issued for.
struct Grant<'a> {
    user: UserIdx,
    client_id: &'a str,
    scope: &'a str,
    audience: &'a str,
    nonce: Option<&'a str>,
    /// The refresh-token family to continue (a refresh), or `None` to start one.
    family: Option<String>,
}

fn issue(sim: &Sim, inner: &mut Inner, grant: Grant<'_>) -> (Value, Option<String>) {
    let Grant {
        user,
        client_id,
        scope,
        audience,
        nonce,
        family,
    } = grant;
    let now = Utc::now().timestamp();
    let ttl = sim.config.access_token_ttl.as_secs() as i64;
    let Some(u) = sim.fixtures.users.get(user.0) else {
        return (json!({}), None);
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let access = sim.keys.sign(&json!({
        "iss": sim.issuer(),
        "sub": u.subject,
        "aud": [audience, format!("{}userinfo", sim.issuer())],
        "iat": now,
        "exp": now + ttl,
        "scope": scope,
        "azp": client_id,
    }));
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scope,
    });
    if scopes.contains(&"openid") {
        let mut claims = json!({
            "iss": sim.issuer(),
            "sub": u.subject,
            "aud": client_id,
            "iat": now,
            "exp": now + ttl,
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(n) = nonce {
                map.insert("nonce".into(), json!(n));
            }
            if scopes.contains(&"profile") {
                map.insert("name".into(), json!(u.name));
                map.insert("nickname".into(), json!(u.login));
            }
            if scopes.contains(&"email") {
                map.insert("email".into(), json!(u.email));
                map.insert("email_verified".into(), json!(true));
            }
        }
        body["id_token"] = json!(sim.keys.sign(&claims));
    }
    let mut family_out = None;
    if scopes.contains(&"offline_access") {
        let family = family.unwrap_or_else(|| sim.ids.token("family"));
        let refresh = format!("v1.{}", sim.ids.token("refresh"));
        inner.idp.refresh.insert(
            refresh.clone(),
            RefreshRec {
                family: family.clone(),
                user,
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                audience: audience.to_owned(),
                created: Utc::now(),
                rotated: false,
            },
        );
        body["refresh_token"] = json!(refresh);
        family_out = Some(family);
    }
    *inner
        .counters
        .tokens_issued
        .entry(sim.login(user).to_owned())
        .or_insert(0) += 1;
    (body, family_out)
}

fn token_ok(body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn token(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let p = params(&headers, &body);
    let client = match client_auth(&sim, &headers, &p) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    let bad_grant = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", d);
    let mut inner = sim.lock();
    match get("grant_type") {
        "authorization_code" => {
            let code = get("code");
            let Some(rec) = inner.idp.codes.get_mut(code) else {
                return bad_grant("Invalid authorization code.");
            };
            if rec.used {
                // A replayed code: revoke what it issued (RFC 6749 section 4.1.2).
                if let Some(f) = rec.family.clone() {
                    inner.idp.revoked_families.insert(f);
                }
                return bad_grant("Invalid authorization code: it was already used.");
            }
            if rec.created.elapsed() > CODE_TTL {
                return bad_grant("Authorization code expired.");
            }
            if rec.request.client_id != client.client_id {
                return bad_grant("The code was issued to another client.");
            }
            if get("redirect_uri") != rec.request.redirect_uri {
                return bad_grant("redirect_uri does not match the authorization request.");
            }
            let verifier = get("code_verifier");
            if verifier.is_empty() {
                return bad_grant("code_verifier is required (PKCE).");
            }
            if !pkce_ok(&rec.request.code_challenge, verifier) {
                return bad_grant("Failed to verify code_verifier.");
            }
            rec.used = true;
            let (user, request) = (rec.user, rec.request.clone());
            let (body, family) = issue(
                &sim,
                &mut inner,
                Grant {
                    user,
                    client_id: &client.client_id,
                    scope: &request.scope,
                    audience: &request.audience,
                    nonce: request.nonce.as_deref(),
                    family: None,
                },
            );
            if let Some(rec) = inner.idp.codes.get_mut(code) {
                rec.family = family;
            }
            token_ok(body)
        }
        "refresh_token" => {
            let presented = get("refresh_token");
            let Some(rec) = inner.idp.refresh.get(presented) else {
                return bad_grant("Unknown or invalid refresh token.");
            };
            let (family, user, rec_client, scope, audience, created, rotated) = (
                rec.family.clone(),
                rec.user,
                rec.client_id.clone(),
                rec.scope.clone(),
                rec.audience.clone(),
                rec.created,
                rec.rotated,
            );
            if rec_client != client.client_id {
                return bad_grant("The refresh token was issued to another client.");
            }
            if inner.idp.revoked_families.contains(&family) {
                return bad_grant("Unknown or invalid refresh token.");
            }
            if rotated {
                // Reuse of a rotated token: revoke the whole family, as Auth0 does.
                inner.idp.revoked_families.insert(family);
                inner.counters.refresh_reuse_detected += 1;
                return bad_grant("Unknown or invalid refresh token.");
            }
            let ttl = chrono::Duration::from_std(sim.config.refresh_token_ttl)
                .unwrap_or(chrono::Duration::MAX);
            if created
                .checked_add_signed(ttl)
                .is_some_and(|end| end < Utc::now())
            {
                return bad_grant("Refresh token expired.");
            }
            if let Some(rec) = inner.idp.refresh.get_mut(presented) {
                rec.rotated = true;
            }
            *inner
                .counters
                .token_refreshes
                .entry(sim.login(user).to_owned())
                .or_insert(0) += 1;
            let (body, _) = issue(
                &sim,
                &mut inner,
                Grant {
                    user,
                    client_id: &rec_client,
                    scope: &scope,
                    audience: &audience,
                    nonce: None,
                    family: Some(family),
                },
            );
            token_ok(body)
        }
        "" => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required.",
        ),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Grant type '{other}' is not supported."),
        ),
    }
}

async fn revoke(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let p = params(&headers, &body);
    let client = match client_auth(&sim, &headers, &p) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let Some(token) = p.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required.",
        );
    };
    let mut inner = sim.lock();
    let family = inner
        .idp
        .refresh
        .get(token)
        .filter(|r| r.client_id == client.client_id)
        .map(|r| r.family.clone());
    if let Some(f) = family {
        inner.idp.revoked_families.insert(f);
    }
    // RFC 7009: unknown tokens are not an error.
    StatusCode::OK.into_response()
}

async fn userinfo(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    let unauthorized = || {
        let mut r = StatusCode::UNAUTHORIZED.into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
        r
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
    else {
        return unauthorized();
    };
    let Ok(claims) = sim.keys.verify(token) else {
        return unauthorized();
    };
    let audience = format!("{}userinfo", sim.issuer());
    let Some(user) = access_token_user(&sim, &claims, &audience) else {
        return unauthorized();
    };
    let Some(u) = sim.fixtures.users.get(user.0) else {
        return unauthorized();
    };
    axum::Json(json!({
        "sub": u.subject,
        "name": u.name,
        "nickname": u.login,
        "email": u.email,
        "email_verified": true,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_any_port() {
        let reg = vec!["http://127.0.0.1/callback".to_owned()];
        assert!(redirect_allowed(
            &reg,
            &[],
            "http://127.0.0.1:43123/callback"
        ));
        assert!(redirect_allowed(&reg, &[], "http://127.0.0.1/callback"));
        assert!(!redirect_allowed(&reg, &[], "http://127.0.0.1:1/other"));
        assert!(!redirect_allowed(
            &reg,
            &[],
            "http://evil.example:80/callback"
        ));
        let reg = vec!["https://gw.example/cb".to_owned()];
        assert!(!redirect_allowed(&reg, &[], "https://gw.example:8443/cb"));
    }

    #[test]
    fn pkce_s256() {
        // RFC 7636 appendix B.
        assert!(pkce_ok(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!pkce_ok(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "short"
        ));
    }
}
