//! Test support: a small OIDC identity provider on loopback (the upstream the gateway logs in
//! at), an authorization server on loopback in front of it, and a "browser" that walks the
//! pages with its own cookie jar.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_server::config::{AuthConfig, IdpConfig};
use auth_server::crypto::{EncryptionKey, pkce_s256, random_token};
use auth_server::store::SqliteStore;
use auth_server::{AuthServer, Store};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

#[allow(unused_imports)] // each test binary uses a part
pub use test_support::oauth::{Browser, Page, authorization_url, pkce, post_form, query};

pub const IDP_CLIENT_ID: &str = "gateway-client";
pub const IDP_CLIENT_SECRET: &str = "gateway-secret";
pub const USER_SUB: &str = "auth0|user-alice";

/// What the mock IdP does and counts.
pub struct IdpState {
    pub base: String,
    key: EcdsaKeyPair,
    codes: Mutex<HashMap<String, (String, String, String)>>, // code -> (challenge, nonce, redirect)
    refresh_tokens: Mutex<HashMap<String, bool>>,            // token -> still valid
    pub refreshes: AtomicUsize,
    pub access_ttl_secs: AtomicU64,
    pub refuse_refresh: AtomicBool,
    pub refresh_delay_ms: AtomicU64,
    pub wrong_nonce: AtomicBool,
    pub issued: Mutex<Vec<String>>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl IdpState {
    fn jwk(&self) -> Value {
        let point = self.key.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": "idp-key-1", "use": "sig", "alg": "ES256",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "idp-key-1"});
        let input = format!(
            "{}.{}",
            b64(&serde_json::to_vec(&header).unwrap()),
            b64(&serde_json::to_vec(claims).unwrap())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    fn tokens(&self, nonce: Option<&str>) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let ttl = self.access_ttl_secs.load(Ordering::SeqCst);
        let access = random_token("idp_at_");
        self.issued.lock().unwrap().push(access.clone());
        let refresh = random_token("idp_rt_");
        self.refresh_tokens
            .lock()
            .unwrap()
            .insert(refresh.clone(), true);
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
            "scope": "openid profile email offline_access",
        });
        if let Some(nonce) = nonce {
            body["id_token"] = json!(self.sign(&json!({
                "iss": format!("{}/", self.base),
                "sub": USER_SUB,
                "aud": IDP_CLIENT_ID,
                "exp": now + 600,
                "iat": now,
                "nonce": nonce,
            })));
        }
        body
    }
}

pub struct MockIdp {
    pub state: Arc<IdpState>,
    pub issuer: String,
}

fn oauth_error(code: &str) -> Response {
    (
        axum::http::StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": code})),
    )
        .into_response()
}

async fn discovery(State(s): State<Arc<IdpState>>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": format!("{}/", s.base),
        "authorization_endpoint": format!("{}/authorize", s.base),
        "token_endpoint": format!("{}/oauth/token", s.base),
        "jwks_uri": format!("{}/.well-known/jwks.json", s.base),
        "revocation_endpoint": format!("{}/oauth/revoke", s.base),
    }))
}

async fn jwks(State(s): State<Arc<IdpState>>) -> axum::Json<Value> {
    axum::Json(json!({"keys": [s.jwk()]}))
}

/// Logs the fixture user in at once (the real simulator shows a form; the e2e tests use it).
async fn idp_authorize(
    State(s): State<Arc<IdpState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    assert_eq!(q.get("client_id").map(String::as_str), Some(IDP_CLIENT_ID));
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(q.get("scope").unwrap().contains("offline_access"));
    let code = random_token("idp_code_");
    let nonce = if s.wrong_nonce.load(Ordering::SeqCst) {
        "not-the-nonce".to_owned()
    } else {
        q["nonce"].clone()
    };
    s.codes.lock().unwrap().insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            nonce,
            q["redirect_uri"].clone(),
        ),
    );
    let mut url = Url::parse(&q["redirect_uri"]).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    Redirect::to(url.as_str()).into_response()
}

async fn token(
    State(s): State<Arc<IdpState>>,
    headers: axum::http::HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let authed = basic.as_deref() == Some(&format!("{IDP_CLIENT_ID}:{IDP_CLIENT_SECRET}"))
        || (f.get("client_id").map(String::as_str) == Some(IDP_CLIENT_ID)
            && f.get("client_secret").map(String::as_str) == Some(IDP_CLIENT_SECRET));
    if !authed {
        return oauth_error("invalid_client");
    }
    match f.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, nonce, redirect)) = s.codes.lock().unwrap().remove(&f["code"])
            else {
                return oauth_error("invalid_grant");
            };
            if pkce_s256(&f["code_verifier"]) != challenge || f["redirect_uri"] != redirect {
                return oauth_error("invalid_grant");
            }
            axum::Json(s.tokens(Some(&nonce))).into_response()
        }
        Some("refresh_token") => {
            s.refreshes.fetch_add(1, Ordering::SeqCst);
            let delay = s.refresh_delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if s.refuse_refresh.load(Ordering::SeqCst) {
                return oauth_error("invalid_grant");
            }
            let valid = s
                .refresh_tokens
                .lock()
                .unwrap()
                .insert(f["refresh_token"].clone(), false);
            if valid != Some(true) {
                return oauth_error("invalid_grant");
            }
            axum::Json(s.tokens(None)).into_response()
        }
        _ => oauth_error("unsupported_grant_type"),
    }
}

impl MockIdp {
    pub async fn start() -> MockIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let state = Arc::new(IdpState {
            base: base.clone(),
            key,
            codes: Mutex::default(),
            refresh_tokens: Mutex::default(),
            refreshes: AtomicUsize::new(0),
            access_ttl_secs: AtomicU64::new(3600),
            refuse_refresh: AtomicBool::new(false),
            refresh_delay_ms: AtomicU64::new(0),
            wrong_nonce: AtomicBool::new(false),
            issued: Mutex::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/authorize", get(idp_authorize))
            .route("/oauth/token", post(token))
            .route("/oauth/revoke", post(|| async { "" }))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockIdp {
            state,
            issuer: format!("{base}/"),
        }
    }
}

/// An authorization server on loopback.
pub struct Gateway {
    pub server: AuthServer,
    pub base: String,
    pub store: Arc<dyn Store>,
    pub key: EncryptionKey,
    task: tokio::task::JoinHandle<()>,
    pub addr: SocketAddr,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn config(base: &str, idp: &MockIdp, key: &EncryptionKey) -> AuthConfig {
    let mut config = AuthConfig::new(
        Url::parse(base).unwrap(),
        IdpConfig {
            issuer: Url::parse(&idp.issuer).unwrap(),
            client_id: IDP_CLIENT_ID.into(),
            client_secret: SecretString::from(IDP_CLIENT_SECRET),
            audience: Some("https://api.layer.ai/".into()),
            scopes: vec!["openid".into(), "offline_access".into()],
        },
        key.clone(),
    )
    .unwrap();
    config.upstream_refresh_margin = Duration::ZERO;
    config
}

impl Gateway {
    /// Starts on a fresh port with an in-memory store.
    pub async fn start(idp: &MockIdp, tweak: impl FnOnce(&mut AuthConfig)) -> Gateway {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        Self::start_with(idp, store, EncryptionKey::generate(), None, tweak).await
    }

    pub async fn start_with(
        idp: &MockIdp,
        store: Arc<dyn Store>,
        key: EncryptionKey,
        addr: Option<SocketAddr>,
        tweak: impl FnOnce(&mut AuthConfig),
    ) -> Gateway {
        let listener =
            tokio::net::TcpListener::bind(addr.unwrap_or("127.0.0.1:0".parse().unwrap()))
                .await
                .unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut config = config(&base, idp, &key);
        tweak(&mut config);
        let server = AuthServer::start(config, store.clone()).await.unwrap();
        let app = server.router();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap()
        });
        Gateway {
            server,
            base,
            store,
            key,
            task,
            addr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// A registered client.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
    pub redirect: String,
}

pub async fn register(gw: &Gateway, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn register_public(gw: &Gateway, redirect: &str) -> Client {
    let (status, body) = register(
        gw,
        json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none",
               "client_name": "Test Client"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    Client {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: None,
        redirect: redirect.to_owned(),
    }
}

/// Walks authorize → consent → IdP → callback; returns the final redirect to the client.
pub async fn authorize(
    gw: &Gateway,
    browser: &mut Browser,
    client: &Client,
    challenge: &str,
    extra: &[(&str, &str)],
) -> Url {
    let url = authorization_url(
        &gw.url("/authorize"),
        &client.id,
        &client.redirect,
        "client-state-123",
        challenge,
        extra,
    );
    let consent = browser.get(url.as_str()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let to_idp = decide(browser, gw, &consent, "approve").await;
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let idp_redirect = browser.get(&to_idp.location().unwrap()).await;
    let back = browser.get(&idp_redirect.location().unwrap()).await;
    assert_eq!(back.status, 302, "{}", back.body);
    Url::parse(&back.location().unwrap()).unwrap()
}

/// Answers a consent page: `decision` ("approve" or "deny") with the page's pending id and
/// CSRF token.
pub async fn decide(browser: &mut Browser, gw: &Gateway, page: &Page, decision: &str) -> Page {
    let pending = page.input("pending").unwrap();
    let csrf = page.input("csrf_token").unwrap();
    browser
        .post_form(
            &gw.url("/authorize/consent"),
            &[
                ("pending", &pending),
                ("csrf_token", &csrf),
                ("decision", decision),
            ],
        )
        .await
}

/// POSTs a form to the token endpoint as `client` (secret in the body if it has one).
pub async fn token_request(gw: &Gateway, client: &Client, form: &[(&str, &str)]) -> (u16, Value) {
    let mut pairs: Vec<(&str, &str)> = form.to_vec();
    pairs.push(("client_id", &client.id));
    if let Some(secret) = &client.secret {
        pairs.push(("client_secret", secret));
    }
    post_form(&gw.url("/token"), &pairs).await
}

/// Asserts a refusal from the token endpoint: the HTTP status and the OAuth `error` code.
#[track_caller]
pub fn assert_refused(status: u16, body: &Value, want_status: u16, want_error: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want_status, Some(want_error))
    );
}

/// The whole flow for a public client: returns the token response.
pub async fn login(gw: &Gateway, client: &Client) -> Value {
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    let back = authorize(gw, &mut browser, client, &challenge, &[]).await;
    let q = query(&back);
    let (status, tokens) = token_request(
        gw,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", &client.redirect),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}
