//! The authorization server over real HTTP on loopback, with a small OIDC provider upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use auth_server::crypto::EncryptionKey;
use auth_server::jwt::{AccessClaims, KeyRing, SigningKey};
use auth_server::store::SqliteStore;
use auth_server::{AuthError, Store};
use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use support::*;

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn discovery_documents_describe_this_server() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let http = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let resp = http
            .get(gw.url(path))
            .header("origin", "https://inspector.example")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["access-control-allow-origin"],
            "*",
            "CORS on {path}"
        );
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["resource"], gw.url("/mcp"));
        assert_eq!(doc["authorization_servers"], json!([gw.base]));
        assert_eq!(doc["scopes_supported"], json!(["layer"]));
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc = get_json(&http, &gw.url(path)).await;
        assert_eq!(doc["issuer"], gw.base);
        assert_eq!(doc["authorization_endpoint"], gw.url("/authorize"));
        assert_eq!(doc["token_endpoint"], gw.url("/token"));
        assert_eq!(doc["registration_endpoint"], gw.url("/register"));
        assert_eq!(doc["revocation_endpoint"], gw.url("/revoke"));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(doc["client_id_metadata_document_supported"], json!(true));
        assert_eq!(
            doc["authorization_response_iss_parameter_supported"],
            json!(true)
        );
        assert!(
            doc["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("none"))
        );
    }
    let jwks = get_json(&http, &gw.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    let challenge = gw.server.www_authenticate(None);
    assert_eq!(
        challenge,
        format!(
            "Bearer resource_metadata=\"{}\", scope=\"layer\"",
            gw.url("/.well-known/oauth-protected-resource/mcp")
        )
    );
    let with_error = gw.server.www_authenticate(Some(&AuthError::InvalidToken(
        "the token has expired".into(),
    )));
    assert!(
        with_error
            .ends_with(", error=\"invalid_token\", error_description=\"the token has expired\"")
    );
}

#[tokio::test]
async fn a_public_client_logs_in_and_its_token_reaches_layer() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://localhost:3334/oauth/callback").await;
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    // Loopback redirects match on any port: the client registered 3334 and uses 41111.
    let client_on_other_port = Client {
        redirect: "http://localhost:41111/oauth/callback".into(),
        ..client.clone()
    };
    let back = authorize(
        &gw,
        &mut browser,
        &client_on_other_port,
        &challenge,
        &[("resource", &gw.url("/mcp"))],
    )
    .await;
    assert_eq!(back.host_str(), Some("localhost"));
    assert_eq!(back.port(), Some(41111));
    let q = query(&back);
    assert_eq!(q["state"], "client-state-123");
    assert_eq!(q["iss"], gw.base, "RFC 9207 iss");
    let (status, tokens) = token_request(
        &gw,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", &client_on_other_port.redirect),
            ("code_verifier", &verifier),
            ("resource", &gw.url("/mcp")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "layer");
    let access = tokens["access_token"].as_str().unwrap();
    let claims = claims_of(access);
    assert_eq!(claims["aud"], gw.url("/mcp"));
    assert_eq!(claims["iss"], gw.base);
    assert_eq!(claims["sub"], USER_SUB);
    assert!(gw.server.is_own_token(access));
    assert!(!gw.server.is_own_token("lyr_pat_abcdef"));
    let caller = gw.server.authenticate(access).await.unwrap();
    assert_eq!(caller.subject.as_str(), USER_SUB);
    assert_eq!(caller.client_id.as_str(), client.id);
    // The Layer token forwarded upstream is the IdP's, never ours.
    let upstream = gw.server.upstream_token(&caller).await.unwrap();
    assert_eq!(
        idp.state.issued.lock().unwrap().as_slice(),
        [upstream.expose_secret().to_owned()]
    );
    assert_ne!(upstream.expose_secret(), access);
    // The store holds neither token in the clear.
    let grant = gw.store.get_grant(&caller.grant_id).await.unwrap().unwrap();
    let sealed = String::from_utf8_lossy(&grant.upstream.sealed).to_string();
    assert!(!sealed.contains(upstream.expose_secret()));
}

#[tokio::test]
async fn a_claude_like_confidential_client_gets_working_tokens() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let (status, reg) = register(
        &gw,
        json!({
            "client_name": "Claude",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        }),
    )
    .await;
    assert_eq!(status, 201, "{reg}");
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_post");
    let client = Client {
        id: reg["client_id"].as_str().unwrap().into(),
        secret: Some(reg["client_secret"].as_str().unwrap().into()),
        redirect: "https://claude.ai/api/mcp/auth_callback".into(),
    };
    let (verifier, challenge) = pkce();
    let mut browser = Browser::new();
    // Resource with a trailing slash and an upper-case host.
    let resource = format!("{}/mcp/", gw.base.replace("http://", "HTTP://"));
    let back = authorize(
        &gw,
        &mut browser,
        &client,
        &challenge,
        &[("resource", &resource)],
    )
    .await;
    assert_eq!(back.host_str(), Some("claude.ai"));
    let q = query(&back);
    let (status, tokens) = token_request(
        &gw,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", &client.redirect),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let caller = caller_of(&gw, &tokens).await;
    assert_eq!(caller.subject.as_str(), USER_SUB);
    // Without its secret, the same client is refused with invalid_client (Claude re-registers).
    let no_secret = Client {
        secret: None,
        ..client.clone()
    };
    let (status, body) =
        refresh_with(&gw, &no_secret, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    // With HTTP Basic instead, it works too.
    let resp = reqwest::Client::new()
        .post(gw.url("/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&refresh_token={}",
            tokens["refresh_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn registration_validates_and_is_rate_limited() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |c| c.registrations_per_window = 3).await;
    for bad in [
        json!({"redirect_uris": ["http://evil.example/cb"], "token_endpoint_auth_method": "none"}),
        json!({"redirect_uris": ["javascript:alert(1)"]}),
        json!({"redirect_uris": []}),
        json!({"token_endpoint_auth_method": "none"}),
    ] {
        let (status, body) = register(&gw, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"], "invalid_redirect_uri", "{bad}");
    }
    let (status, body) = register(
        &gw,
        json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}),
    )
    .await;
    assert_refused(status, &body, 400, "invalid_client_metadata");
    let (status, body) = register(
        &gw,
        json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
    )
    .await;
    assert_refused(status, &body, 400, "invalid_client_metadata");
    // No method named: RFC 7591's default, client_secret_basic, with a secret.
    let (status, body) = register(&gw, json!({"redirect_uris": ["https://a.example/cb"]})).await;
    assert_eq!(status, 201);
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert!(body["client_secret"].as_str().unwrap().len() > 30);
    for _ in 0..2 {
        let (status, _) = register(&gw, json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none"})).await;
        assert_eq!(status, 201);
    }
    let resp = reqwest::Client::new()
        .post(gw.url("/register"))
        .json(&json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

async fn authorize_raw(gw: &Gateway, params: &[(&str, &str)]) -> Page {
    let mut url = url::Url::parse(&gw.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs(params);
    Browser::new().get(url.as_str()).await
}

#[tokio::test]
async fn authorization_requests_are_refused_with_the_right_error() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let (_, challenge) = pkce();
    let base = |extra: &[(&'static str, String)]| {
        let mut p: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", client.id.clone()),
            ("redirect_uri", client.redirect.clone()),
            ("state", "s1".into()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".into()),
        ];
        for (k, v) in extra {
            p.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                p.push((k, v.clone()));
            }
        }
        p
    };
    let run = |p: Vec<(&'static str, String)>| {
        let gw = &gw;
        async move {
            let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            authorize_raw(gw, &refs).await
        }
    };
    // Errors that can go back to the client go back to it, with state and iss.
    for (extra, error) in [
        (vec![("code_challenge", String::new())], "invalid_request"),
        (
            vec![("code_challenge_method", "plain".to_owned())],
            "invalid_request",
        ),
        (
            vec![("code_challenge_method", String::new())],
            "invalid_request",
        ),
        (
            vec![("resource", "https://other.example/mcp".to_owned())],
            "invalid_target",
        ),
        (
            vec![("response_type", "token".to_owned())],
            "unsupported_response_type",
        ),
    ] {
        let page = run(base(&extra)).await;
        assert_eq!(page.status, 302, "{extra:?}");
        let loc = url::Url::parse(&page.location().unwrap()).unwrap();
        assert!(
            loc.as_str().starts_with("http://127.0.0.1:5555/cb?"),
            "{loc}"
        );
        let q = query(&loc);
        assert_eq!(q["error"], error, "{extra:?}");
        assert_eq!(q["state"], "s1");
        assert_eq!(q["iss"], gw.base);
        assert!(!q.contains_key("code"));
    }
    // A missing state is refused too (no state to echo).
    let page = run(base(&[("state", String::new())])).await;
    assert_eq!(
        query(&url::Url::parse(&page.location().unwrap()).unwrap())["error"],
        "invalid_request"
    );
    // An unregistered redirect URI or client: an error page, and no redirect at all.
    for extra in [
        vec![("redirect_uri", "https://evil.example/cb".to_owned())],
        vec![("redirect_uri", "http://127.0.0.1:5555/other".to_owned())],
        vec![("client_id", "lmc_not-registered".to_owned())],
        vec![("client_id", String::new())],
    ] {
        let page = run(base(&extra)).await;
        assert_eq!(page.status, 400, "{extra:?}");
        assert!(page.location().is_none());
        assert!(
            page.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(page.body.contains("Layer"));
    }
    // Nothing was issued: no grant exists.
    assert_eq!(idp.state.issued.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn the_consent_page_is_protected() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let (_, challenge) = pkce();
    let mut browser = Browser::new();
    let url = authorize_url(&gw, &client, &challenge);
    let page = browser.get(url.as_str()).await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(!page.body.contains("<script"));
    assert!(page.body.contains("Test Client"));
    assert!(page.body.contains("127.0.0.1"), "names the redirect host");
    assert!(page.body.contains("Creative Units"), "says what it may do");
    let cookie = page.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-"), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pending = page.input("pending").unwrap();
    // Without the CSRF token: refused (and the consent is spent).
    let no_csrf = browser
        .post_form(
            &gw.url("/authorize/consent"),
            &[("pending", &pending), ("decision", "approve")],
        )
        .await;
    assert_eq!(no_csrf.status, 403);
    assert!(no_csrf.location().is_none());
    let again = decide(&mut browser, &gw, &page, "approve").await;
    assert_eq!(again.status, 400, "single use");
    // From another browser (no cookie), with the right CSRF token: refused.
    let page = browser.get(url.as_str()).await;
    let mut other = Browser::new();
    let resp = decide(&mut other, &gw, &page, "approve").await;
    assert_eq!(resp.status, 403);
    // Deny goes back to the client with access_denied.
    let page = browser.get(url.as_str()).await;
    let resp = decide(&mut browser, &gw, &page, "deny").await;
    assert_eq!(resp.status, 303);
    let q = query(&url::Url::parse(&resp.location().unwrap()).unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "s");
    assert_eq!(idp.state.issued.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn a_bad_id_token_nonce_issues_nothing() {
    let idp = MockIdp::start().await;
    idp.state.wrong_nonce.store(true, Ordering::SeqCst);
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let (_, challenge) = pkce();
    let back = authorize(&gw, &mut Browser::new(), &client, &challenge, &[]).await;
    let q = query(&back);
    assert_eq!(q["error"], "server_error");
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn code_exchange_refusals() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let exchange = |code: String, verifier: String| {
        let gw = &gw;
        let client = &client;
        async move {
            token_request(
                gw,
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &client.redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    // Wrong verifier: invalid_grant, nothing issued, and the code is spent.
    let (verifier, challenge) = pkce();
    let q = query(&authorize(&gw, &mut Browser::new(), &client, &challenge, &[]).await);
    let (wrong, _) = pkce();
    let (status, body) = exchange(q["code"].clone(), wrong).await;
    assert_refused(status, &body, 400, "invalid_grant");
    assert!(body.get("access_token").is_none());
    let (status, body) = exchange(q["code"].clone(), verifier).await;
    assert_refused(status, &body, 400, "invalid_grant");
    // Reused code: the second exchange fails and the tokens of the first stop working.
    let (verifier, challenge) = pkce();
    let q = query(&authorize(&gw, &mut Browser::new(), &client, &challenge, &[]).await);
    let (status, first) = exchange(q["code"].clone(), verifier.clone()).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    assert!(gw.server.authenticate(access).await.is_ok());
    let (status, body) = exchange(q["code"].clone(), verifier).await;
    assert_refused(status, &body, 400, "invalid_grant");
    assert!(matches!(
        gw.server.authenticate(access).await,
        Err(AuthError::InvalidToken(_))
    ));
    let (status, body) = refresh_with(&gw, &client, first["refresh_token"].as_str().unwrap()).await;
    assert_refused(status, &body, 400, "invalid_grant");
    // Unknown client at the token endpoint.
    let stranger = Client {
        id: "lmc_unknown".into(),
        ..client.clone()
    };
    let (status, body) = token_request(
        &gw,
        &stranger,
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await;
    assert_refused(status, &body, 401, "invalid_client");
    // Another client's code.
    let (verifier, challenge) = pkce();
    let q = query(&authorize(&gw, &mut Browser::new(), &client, &challenge, &[]).await);
    let other = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let (status, body) = redeem(&gw, &other, &q["code"], &verifier).await;
    assert_refused(status, &body, 400, "invalid_grant");
    // Unsupported grant type.
    let (status, body) = token_request(&gw, &client, &[("grant_type", "password")]).await;
    assert_refused(status, &body, 400, "unsupported_grant_type");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |c| c.code_ttl = Duration::from_millis(300)).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let (verifier, challenge) = pkce();
    let q = query(&authorize(&gw, &mut Browser::new(), &client, &challenge, &[]).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = redeem(&gw, &client, &q["code"], &verifier).await;
    assert_refused(status, &body, 400, "invalid_grant");
}

#[tokio::test]
async fn foreign_expired_and_tampered_tokens_are_refused() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |c| c.access_token_ttl = Duration::from_secs(1)).await;
    let (_, tokens) = logged_in(&gw).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let claims: AccessClaims = serde_json::from_value(claims_of(&access)).unwrap();
    assert!(gw.server.authenticate(&access).await.is_ok());

    let records = gw.store.signing_keys().await.unwrap();
    let ours = KeyRing::from_records(&gw.key, &records).unwrap();
    // Another audience, signed with our own key.
    let other_aud = ours
        .sign(&AccessClaims {
            aud: "https://other.example/mcp".into(),
            ..claims.clone()
        })
        .unwrap();
    let e = gw.server.authenticate(&other_aud).await.unwrap_err();
    assert_eq!(
        e,
        AuthError::InvalidToken("the token is for another audience".into())
    );
    // Signed by another key.
    let (_, foreign_record) = SigningKey::generate(&gw.key, 0).unwrap();
    let foreign = KeyRing::from_records(&gw.key, &[foreign_record]).unwrap();
    let e = gw
        .server
        .authenticate(&foreign.sign(&claims).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::InvalidToken(_)), "{e:?}");
    // Tampered: another subject in the payload.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    let mut forged = claims_of(&access);
    forged["sub"] = json!("auth0|mallory");
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&forged).unwrap());
    let e = gw.server.authenticate(&parts.join(".")).await.unwrap_err();
    assert_eq!(
        e,
        AuthError::InvalidToken("the token's signature is invalid".into())
    );
    // alg=none.
    let none = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"at+jwt"}"#),
        parts[1]
    );
    assert!(gw.server.authenticate(&none).await.is_err());
    assert!(gw.server.authenticate("not.a.jwt").await.is_err());
    // Expired.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = gw.server.authenticate(&access).await.unwrap_err();
    assert_eq!(e, AuthError::InvalidToken("the token has expired".into()));
}

#[tokio::test]
async fn refresh_rotates_with_a_grace_window_and_reuse_revokes_the_grant() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |c| c.refresh_grace = Duration::from_millis(800)).await;
    let (client, tokens) = logged_in(&gw).await;
    let r0 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let gw = &gw;
        let client = &client;
        async move { refresh_with(gw, client, &token).await }
    };
    // Two refreshes with the same token at the same moment (a hosted client refreshing from
    // two places): both succeed, with different new refresh tokens.
    let ((s1, a), (s2, b)) = tokio::join!(refresh(r0.clone()), refresh(r0.clone()));
    assert_eq!((s1, s2), (200, 200), "{a} {b}");
    let r1 = a["refresh_token"].as_str().unwrap().to_owned();
    let r1b = b["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r0);
    assert_ne!(r1, r1b);
    assert!(
        gw.server
            .authenticate(a["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );
    // Rotation goes on from either successor.
    let (s, c) = refresh(r1.clone()).await;
    assert_eq!(s, 200, "{c}");
    let access = c["access_token"].as_str().unwrap().to_owned();
    // After the grace window, the old token is a reuse: invalid_grant, and the whole grant is
    // revoked (the newest access token stops at once, as do the other successors).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (s, body) = refresh(r0).await;
    assert_refused(s, &body, 400, "invalid_grant");
    assert!(matches!(
        gw.server.authenticate(&access).await,
        Err(AuthError::InvalidToken(_))
    ));
    let (s, _) = refresh(c["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(s, 400);
    let (s, _) = refresh(r1b).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn revoking_either_token_stops_the_grant() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let revoke = |token: String| {
        let gw = &gw;
        let client = &client;
        async move {
            reqwest::Client::new()
                .post(gw.url("/revoke"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}&client_id={}", client.id))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for kind in ["refresh_token", "access_token"] {
        let tokens = login(&gw, &client).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let caller = gw.server.authenticate(&access).await.unwrap();
        assert_eq!(revoke(tokens[kind].as_str().unwrap().to_owned()).await, 200);
        assert!(
            matches!(
                gw.server.authenticate(&access).await,
                Err(AuthError::InvalidToken(_))
            ),
            "{kind}"
        );
        assert!(matches!(
            gw.server.upstream_token(&caller).await,
            Err(AuthError::InvalidToken(_))
        ));
        let (s, body) = refresh_with(&gw, &client, tokens["refresh_token"].as_str().unwrap()).await;
        assert_refused(s, &body, 400, "invalid_grant");
    }
    // Unknown tokens: 200 all the same (RFC 7009).
    assert_eq!(revoke("nonsense".into()).await, 200);
}

#[tokio::test]
async fn layer_is_refreshed_once_for_twenty_parallel_calls() {
    let idp = MockIdp::start().await;
    idp.state.access_ttl_secs.store(1, Ordering::SeqCst);
    idp.state.refresh_delay_ms.store(200, Ordering::SeqCst);
    let gw = Gateway::start(&idp, |_| {}).await;
    let (_, tokens) = logged_in(&gw).await;
    let caller = caller_of(&gw, &tokens).await;
    let first = gw.server.upstream_token(&caller).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.state.access_ttl_secs.store(3600, Ordering::SeqCst);
    let tokens = twenty_calls_for_layer_tokens(&[&gw.server], &caller).await;
    assert_eq!(
        idp.state.refreshes.load(Ordering::SeqCst),
        1,
        "one refresh at Layer"
    );
    assert_eq!(tokens.len(), 1, "every call got the same new token");
    assert!(!tokens.contains(first.expose_secret()));
}

/// Twenty calls at once for the caller's Layer token, on `servers` in turn; the distinct
/// tokens they got.
async fn twenty_calls_for_layer_tokens(
    servers: &[&auth_server::AuthServer],
    caller: &auth_server::OAuthCaller,
) -> std::collections::HashSet<String> {
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let server = servers[i % servers.len()].clone();
            let caller = caller.clone();
            tokio::spawn(async move { server.upstream_token(&caller).await })
        })
        .collect();
    let mut tokens = std::collections::HashSet::new();
    for call in calls {
        let token = call.await.unwrap().unwrap();
        tokens.insert(token.expose_secret().to_owned());
    }
    tokens
}

#[tokio::test]
async fn a_grant_layer_no_longer_refreshes_is_dead() {
    let idp = MockIdp::start().await;
    idp.state.access_ttl_secs.store(1, Ordering::SeqCst);
    let gw = Gateway::start(&idp, |_| {}).await;
    let (_, tokens) = logged_in(&gw).await;
    let access = tokens["access_token"].as_str().unwrap();
    let caller = gw.server.authenticate(access).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.state.refuse_refresh.store(true, Ordering::SeqCst);
    let e = gw.server.upstream_token(&caller).await.unwrap_err();
    assert!(matches!(e, AuthError::InvalidToken(_)), "{e:?}");
    assert!(matches!(
        gw.server.authenticate(access).await,
        Err(AuthError::InvalidToken(_))
    ));
}

#[tokio::test]
async fn a_restart_logs_nobody_out() {
    let idp = MockIdp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.sqlite3");
    let key = EncryptionKey::generate();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let gw = Gateway::start_with(&idp, store, key.clone(), None, |_| {}).await;
    let addr = gw.addr;
    let (client, tokens) = logged_in(&gw).await;
    // A code issued before the restart, exchanged after it.
    let (verifier, challenge) = pkce();
    let q = query(&authorize(&gw, &mut Browser::new(), &client, &challenge, &[]).await);
    drop(gw);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let gw = Gateway::start_with(&idp, store, key, Some(addr), |_| {}).await;
    let caller = caller_of(&gw, &tokens).await;
    assert!(gw.server.upstream_token(&caller).await.is_ok());
    let (s, refreshed) =
        refresh_with(&gw, &client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{refreshed}");
    let (s, body) = redeem(&gw, &client, &q["code"], &verifier).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn rotated_keys_keep_verifying_until_their_tokens_expire() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let before = login(&gw, &client).await;
    let new_kid = gw.server.rotate_signing_key().await.unwrap();
    let after = login(&gw, &client).await;
    let header = |t: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        header(after["access_token"].as_str().unwrap())["kid"],
        new_kid
    );
    assert_ne!(
        header(before["access_token"].as_str().unwrap())["kid"],
        new_kid
    );
    assert!(
        gw.server
            .authenticate(before["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );
    assert!(
        gw.server
            .authenticate(after["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );
    let jwks: Value = reqwest::get(gw.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn metadata_document_clients() {
    use auth_server::clients::ClientMetadataFetcher;
    struct Docs;
    #[async_trait::async_trait]
    impl ClientMetadataFetcher for Docs {
        async fn fetch(&self, url: &url::Url) -> Result<Value, String> {
            match url.path() {
                "/good.json" => Ok(json!({
                    "client_id": url.as_str(),
                    "client_name": "Metadata App",
                    "redirect_uris": ["http://localhost:7777/oauth/callback"],
                    "token_endpoint_auth_method": "none",
                })),
                "/liar.json" => Ok(json!({
                    "client_id": "https://someone-else.example/good.json",
                    "redirect_uris": ["http://localhost:7777/oauth/callback"],
                })),
                _ => Err("404".into()),
            }
        }
    }
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |c| c.metadata_fetcher = Arc::new(Docs)).await;
    let client = Client {
        id: "https://app.example/good.json".into(),
        secret: None,
        redirect: "http://localhost:7777/oauth/callback".into(),
    };
    let tokens = login(&gw, &client).await;
    let caller = caller_of(&gw, &tokens).await;
    assert_eq!(caller.client_id.as_str(), client.id);
    // The document's redirect URIs bind the flow.
    let page = authorize_raw(
        &gw,
        &[
            ("response_type", "code"),
            ("client_id", &client.id),
            ("redirect_uri", "https://evil.example/cb"),
            ("state", "s"),
        ],
    )
    .await;
    assert_eq!((page.status, page.location()), (400, None));
    let page = authorize_raw(
        &gw,
        &[
            ("response_type", "code"),
            ("client_id", "https://app.example/liar.json"),
            ("redirect_uri", "http://localhost:7777/oauth/callback"),
            ("state", "s"),
        ],
    )
    .await;
    assert_eq!((page.status, page.location()), (400, None));
    assert!(
        page.body.contains("does not equal its URL"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_metadata_document_on_a_private_address_is_never_fetched() {
    // The real fetcher (safe-fetch), and a listener on loopback that would record a request.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
        }
    });
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    for client_id in [
        format!("https://127.0.0.1:{port}/client.json"),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        format!("https://localhost:{port}/client.json"),
        "https://[::1]/client.json".to_owned(),
    ] {
        let page = authorize_raw(
            &gw,
            &[
                ("response_type", "code"),
                ("client_id", &client_id),
                ("redirect_uri", "http://localhost:7777/oauth/callback"),
                ("state", "s"),
            ],
        )
        .await;
        assert_eq!(page.status, 400, "{client_id}: {}", page.body);
        assert!(page.body.contains("invalid_client"));
        assert!(page.location().is_none());
        assert!(
            gw.store
                .get_client(&auth_server::ClientId::new(client_id.clone()))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no connection was made");
}

#[tokio::test]
async fn two_replicas_sharing_a_store_refresh_layer_once() {
    let idp = MockIdp::start().await;
    idp.state.access_ttl_secs.store(1, Ordering::SeqCst);
    idp.state.refresh_delay_ms.store(300, Ordering::SeqCst);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let key = EncryptionKey::generate();
    let a = Gateway::start_with(&idp, store.clone(), key.clone(), None, |_| {}).await;
    let b = Gateway::start_with(&idp, store, key, None, |_| {}).await;
    let (_, tokens) = logged_in(&a).await;
    let caller = caller_of(&a, &tokens).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    idp.state.access_ttl_secs.store(3600, Ordering::SeqCst);
    let tokens = twenty_calls_for_layer_tokens(&[&a.server, &b.server], &caller).await;
    assert_eq!(
        idp.state.refreshes.load(Ordering::SeqCst),
        1,
        "one refresh at Layer across replicas"
    );
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn a_layer_token_rejected_early_is_refreshed_on_the_next_call() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let (_, tokens) = logged_in(&gw).await;
    let caller = caller_of(&gw, &tokens).await;
    let first = gw.server.upstream_token(&caller).await.unwrap();
    assert_eq!(
        gw.server
            .upstream_token(&caller)
            .await
            .unwrap()
            .expose_secret(),
        first.expose_secret(),
        "cached while valid"
    );
    gw.server.upstream_rejected(&caller.grant_id).await;
    let second = gw.server.upstream_token(&caller).await.unwrap();
    assert_ne!(second.expose_secret(), first.expose_secret());
    assert_eq!(idp.state.refreshes.load(Ordering::SeqCst), 1);
    // If Layer refuses that refresh too, the grant is over.
    gw.server.upstream_rejected(&caller.grant_id).await;
    idp.state.refuse_refresh.store(true, Ordering::SeqCst);
    assert!(matches!(
        gw.server.upstream_token(&caller).await,
        Err(AuthError::InvalidToken(_))
    ));
}

#[tokio::test]
async fn a_code_exchanged_twice_at_once_issues_tokens_once() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |_| {}).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let (verifier, challenge) = pkce();
    let q = query(&authorize(&gw, &mut Browser::new(), &client, &challenge, &[]).await);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let ((s1, a), (s2, b)) = tokio::join!(
        token_request(&gw, &client, &form),
        token_request(&gw, &client, &form)
    );
    // Never two sets of tokens: at most one exchange succeeds, the other is a replay.
    assert!(s1 == 400 || s2 == 400, "{a} {b}");
    for body in [&a, &b] {
        if let Some(access) = body["access_token"].as_str() {
            // The replay revoked the grant: the winner's tokens are dead too.
            assert!(gw.server.authenticate(access).await.is_err());
        } else {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
}

#[tokio::test]
async fn unused_registrations_expire() {
    let idp = MockIdp::start().await;
    let gw = Gateway::start(&idp, |c| c.client_unused_ttl = Duration::from_millis(300)).await;
    let client = register_public(&gw, "http://127.0.0.1:5555/cb").await;
    let (_, challenge) = pkce();
    let params = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", client.redirect.as_str()),
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    assert_eq!(authorize_raw(&gw, &params).await.status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let page = authorize_raw(&gw, &params).await;
    assert_eq!((page.status, page.location()), (400, None));
    gw.server.purge().await.unwrap();
    let id = auth_server::ClientId::new(client.id.clone());
    assert!(gw.store.get_client(&id).await.unwrap().is_none());
}

/// An https server for `files.test` (safe-fetch's test certificate) that answers every
/// request with `body` as JSON and counts requests.
async fn metadata_server(
    body: impl FnOnce(u16) -> Value,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../safe-fetch/tests/fixtures");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixtures.join("files.test.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixtures.join("files.test.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let body = body(port).to_string();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, hits)
}

fn safe_fetcher_for_files_test(port: u16) -> Arc<auth_server::clients::SafeMetadataFetcher> {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../safe-fetch/tests/fixtures");
    let policy = auth_server::clients::SafeMetadataFetcher::default_policy()
        .allow_host(&format!("files.test:{port}"))
        .unwrap()
        .add_root_certificate_pem(&std::fs::read(fixtures.join("test-ca.pem")).unwrap())
        .unwrap();
    let resolver =
        safe_fetch::StaticResolver::new().with("files.test", ["127.0.0.1".parse().unwrap()]);
    Arc::new(auth_server::clients::SafeMetadataFetcher::from_fetcher(
        safe_fetch::SafeFetcher::new(policy).with_resolver(resolver),
    ))
}

#[tokio::test]
async fn a_metadata_document_client_over_https_through_safe_fetch() {
    let (port, hits) = metadata_server(|port| {
        json!({
            "client_id": format!("https://files.test:{port}/client.json"),
            "client_name": "Document App",
            "redirect_uris": ["http://localhost:7000/callback"],
            "token_endpoint_auth_method": "none",
        })
    })
    .await;
    let idp = MockIdp::start().await;
    let fetcher = safe_fetcher_for_files_test(port);
    let gw = Gateway::start(&idp, |c| c.metadata_fetcher = fetcher).await;
    let client = Client {
        id: format!("https://files.test:{port}/client.json"),
        secret: None,
        redirect: "http://localhost:7000/callback".into(),
    };
    let tokens = login(&gw, &client).await;
    let caller = caller_of(&gw, &tokens).await;
    assert_eq!(caller.client_id.as_str(), client.id);
    // Cached: the second login did not fetch again (one fetch for authorize, none for token).
    login(&gw, &client).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached");
    // A document that names another URL is refused, through the same real fetcher.
    let (liar_port, _) = metadata_server(|_| {
        json!({"client_id": "https://files.test/other.json", "redirect_uris": ["http://localhost:7000/callback"]})
    })
    .await;
    let gw = Gateway::start(&idp, |c| {
        c.metadata_fetcher = safe_fetcher_for_files_test(liar_port)
    })
    .await;
    let page = authorize_raw(
        &gw,
        &[
            ("response_type", "code"),
            (
                "client_id",
                &format!("https://files.test:{liar_port}/client.json"),
            ),
            ("redirect_uri", "http://localhost:7000/callback"),
            ("state", "s"),
        ],
    )
    .await;
    assert_eq!((page.status, page.location()), (400, None));
}

/// Two replicas (their own Redis connections) sharing one Redis and one public URL.
async fn replicas_on_redis(
    idp: &MockIdp,
    redis: &test_support::redis::RedisServer,
) -> (Gateway, Gateway) {
    let key = EncryptionKey::generate();
    let store_a: Arc<dyn Store> =
        Arc::new(auth_server::store::RedisStore::connect(&redis.url()).unwrap());
    let store_b: Arc<dyn Store> =
        Arc::new(auth_server::store::RedisStore::connect(&redis.url()).unwrap());
    let a = Gateway::start_with(idp, store_a, key.clone(), None, |_| {}).await;
    let public = url::Url::parse(&a.base).unwrap();
    let b = Gateway::start_with(idp, store_b, key, None, |c| c.public_url = public).await;
    (a, b)
}

#[tokio::test]
async fn a_login_on_one_replica_refreshes_and_revokes_on_another_through_redis() {
    let redis = test_support::redis::RedisServer::start();
    let idp = MockIdp::start().await;
    let (a, b) = replicas_on_redis(&idp, &redis).await;
    let (client, tokens) = logged_in(&a).await;
    let access = tokens["access_token"].as_str().unwrap();
    // B knows A's signing key and grant, and opens the Layer token with the shared key.
    let caller = b.server.authenticate(access).await.unwrap();
    assert_eq!(caller.subject.as_str(), USER_SUB);
    let layer = b.server.upstream_token(&caller).await.unwrap();
    assert_eq!(
        idp.state.issued.lock().unwrap().as_slice(),
        [layer.expose_secret().to_owned()]
    );
    // Refresh through B (the client registered at A).
    let (status, refreshed) =
        refresh_with(&b, &client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{refreshed}");
    let new_access = refreshed["access_token"].as_str().unwrap();
    a.server.authenticate(new_access).await.unwrap();
    // And on through A with the successor B issued.
    let (status, again) =
        refresh_with(&a, &client, refreshed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{again}");
    // Revoked at B: A refuses every token of the grant at once.
    let resp = reqwest::Client::new()
        .post(b.url("/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "token={}&client_id={}",
            again["refresh_token"].as_str().unwrap(),
            client.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(matches!(
        a.server
            .authenticate(again["access_token"].as_str().unwrap())
            .await,
        Err(AuthError::InvalidToken(_))
    ));
    let (status, body) = refresh_with(&a, &client, again["refresh_token"].as_str().unwrap()).await;
    assert_refused(status, &body, 400, "invalid_grant");
}

#[tokio::test]
async fn a_redis_outage_answers_temporarily_unavailable_changes_nothing_and_heals() {
    let mut redis = test_support::redis::RedisServer::start_durable();
    let idp = MockIdp::start().await;
    let (a, b) = replicas_on_redis(&idp, &redis).await;
    let (client, tokens) = logged_in(&a).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let r0 = tokens["refresh_token"].as_str().unwrap().to_owned();

    redis.kill();
    let started = std::time::Instant::now();
    let (status, body) = refresh_with(&b, &client, &r0).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        !description.contains("127.0.0.1") && !description.contains("redis://"),
        "{description}"
    );
    // Token checks say "retry", not "log in again".
    assert!(matches!(
        a.server.authenticate(&access).await,
        Err(AuthError::Unavailable(_))
    ));
    // A new login cannot start, and says why.
    let mut browser = Browser::new();
    let (_, challenge) = pkce();
    let page = authorize_raw_as(&a, &mut browser, &client, &challenge).await;
    assert_eq!(page.status, 503, "{}", page.body);
    // Revocation too.
    let resp = reqwest::Client::new()
        .post(a.url("/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={r0}&client_id={}", client.id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(a.server.check_store().await.is_err());

    // Redis comes back (with its data): the same servers recover by themselves, and the
    // refresh token is as it was (not rotated, not revoked).
    redis.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while a.server.check_store().await.is_err() || b.server.check_store().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.server.authenticate(&access).await.unwrap();
    let (status, body) = refresh_with(&b, &client, &r0).await;
    assert_eq!(status, 200, "{body}");
    let page = authorize_raw_as(&a, &mut browser, &client, &challenge).await;
    assert_eq!(page.status, 200, "{}", page.body);
}

async fn authorize_raw_as(
    gw: &Gateway,
    browser: &mut Browser,
    client: &Client,
    challenge: &str,
) -> Page {
    browser
        .get(authorize_url(gw, client, challenge).as_str())
        .await
}

/// A plain authorization request for `client` (state "s", S256 challenge).
fn authorize_url(gw: &Gateway, client: &Client, challenge: &str) -> url::Url {
    let mut url = url::Url::parse(&gw.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", &client.redirect)
        .append_pair("state", "s")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url
}

/// A public client (redirecting to 127.0.0.1:5555) registered and logged in: the client and
/// its token response.
async fn logged_in(gw: &Gateway) -> (Client, Value) {
    let client = register_public(gw, "http://127.0.0.1:5555/cb").await;
    let tokens = login(gw, &client).await;
    (client, tokens)
}

/// Exchanges a code with its PKCE verifier (and no redirect URI) as `client`.
async fn redeem(gw: &Gateway, client: &Client, code: &str, verifier: &str) -> (u16, Value) {
    token_request(
        gw,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// The caller the server sees for a token response's access token.
async fn caller_of(gw: &Gateway, tokens: &Value) -> auth_server::OAuthCaller {
    gw.server
        .authenticate(tokens["access_token"].as_str().unwrap())
        .await
        .unwrap()
}

async fn refresh_with(gw: &Gateway, client: &Client, token: &str) -> (u16, Value) {
    token_request(
        gw,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await
}
