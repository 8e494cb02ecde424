//! The simulated IdP: authorization code with PKCE through the HTML form, tokens accepted by
//! the API, refresh rotation with reuse detection, revocation, and the refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use layer_sim::SimConfig;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

const CLIENT: &str = "layer-mcp-gateway";
const SECRET: &str = "sim-gateway-client-secret";
const VERIFIER: &str = "a-pkce-code-verifier-that-is-long-enough-0123456789";

fn challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(h: &Harness, redirect: &str, extra: &str) -> String {
    h.url(&format!(
        "/authorize?response_type=code&client_id={CLIENT}&redirect_uri={}&scope=openid%20profile%20email%20offline_access&state=st4te&nonce=n0nce&audience=https://api.layer.ai/&code_challenge={}&code_challenge_method=S256{extra}",
        urlencode(redirect),
        challenge(VERIFIER)
    ))
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn query_of(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

/// Plays the browser: opens /authorize, fills the form, returns the redirect's query.
async fn login(h: &Harness, redirect: &str, user: &str, password: &str) -> HashMap<String, String> {
    let page = h.fetch(authorize_url(h, redirect, "")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\" action=\"/u/login\">"));
    let r = submit_login(h, &html, user, password).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    query_of(r.headers()["location"].to_str().unwrap())
}

/// Posts the login form found in `html` with these credentials.
async fn submit_login(h: &Harness, html: &str, user: &str, password: &str) -> Response {
    let tx = html
        .split("name=\"tx\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let form = [("tx", tx), ("username", user), ("password", password)];
    h.http
        .post(h.url("/u/login"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A `refresh_token` grant.
async fn refresh(h: &Harness, refresh_token: &str, basic: bool) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    token(h, &form, basic).await
}

async fn token(h: &Harness, form: &[(&str, &str)], basic: bool) -> (StatusCode, Value) {
    let mut req = h.http.post(h.url("/oauth/token"));
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    if basic {
        req = req.basic_auth(CLIENT, Some(SECRET));
    } else {
        fields.push(("client_id", CLIENT));
        fields.push(("client_secret", SECRET));
    }
    let r = req.form(&fields).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

/// Signs in through the browser flow and exchanges the code: the token answer.
async fn sign_in(h: &Harness, redirect: &str, user: &str, password: &str, basic: bool) -> Value {
    let q = login(h, redirect, user, password).await;
    code_exchange(h, &q["code"], redirect, basic).await.1
}

async fn code_exchange(
    h: &Harness,
    code: &str,
    redirect: &str,
    basic: bool,
) -> (StatusCode, Value) {
    token(
        h,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ],
        basic,
    )
    .await
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn code_flow_with_pkce_gives_tokens_the_api_accepts_as_the_same_user() {
    let h = Harness::start().await;
    let discovery: Value = h
        .fetch_json(h.url("/.well-known/openid-configuration"))
        .await;
    assert_eq!(discovery["issuer"], h.sim.issuer());
    assert_eq!(discovery["code_challenge_methods_supported"][0], "S256");
    let jwks: Value = h.fetch_json(discovery["jwks_uri"].as_str().unwrap()).await;
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    // Any loopback port is a registered callback.
    let redirect = "http://127.0.0.1:49152/oauth/layer/callback";
    let q = login(&h, redirect, "alice", "alice-sim-password").await;
    assert_eq!(q["state"], "st4te");
    let (status, tokens) = code_exchange(&h, &q["code"], redirect, true).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let access = tokens["access_token"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&B64.decode(access.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);
    let at = claims(access);
    assert_eq!(at["sub"], "auth0|6650a1ce0000000000000001");
    assert_eq!(at["iss"], h.sim.issuer());
    assert!(
        at["aud"]
            .as_array()
            .unwrap()
            .contains(&Value::from("https://api.layer.ai/"))
    );
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], CLIENT);
    assert_eq!(id["nonce"], "n0nce");
    assert_eq!(id["email"], "alice@example.com");

    let via_token = h.get_json(access, "/workspaces").await;
    let via_pat = h.get_json(&h.pat("alice"), "/workspaces").await;
    assert_eq!(via_token["workspaces"], via_pat["workspaces"]);
    let info = h.fetch_json_as(access, h.url("/userinfo")).await;
    assert_eq!(info["nickname"], "alice");

    // The code is single-use.
    let (status, err) = code_exchange(&h, &q["code"], redirect, true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let h = Harness::start().await;
    let redirect = "http://localhost:8123/callback";
    let t1 = sign_in(&h, redirect, "bob@example.com", "bob-sim-password", false).await;
    let r1 = t1["refresh_token"].as_str().unwrap().to_owned();
    let (status, t2) = refresh(&h, &r1, false).await;
    assert_eq!(status, StatusCode::OK);
    let r2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "rotated");
    assert_eq!(
        claims(t2["access_token"].as_str().unwrap())["sub"],
        "auth0|6650a1ce0000000000000002"
    );
    assert_eq!(h.state().await["counters"]["token_refreshes"]["bob"], 1);

    // Presenting the rotated token again revokes the family: r2 stops working too.
    let (status, err) = refresh(&h, &r1, true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    let (status, _) = refresh(&h, &r2, true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let state = h.state().await;
    assert_eq!(state["counters"]["refresh_reuse_detected"], 1);
    assert_eq!(state["refresh_token_families"][0]["revoked"], true);
}

#[tokio::test]
async fn revoke_ends_the_refresh_token() {
    let h = Harness::start().await;
    let redirect = "http://127.0.0.1:5000/callback";
    let t = sign_in(&h, redirect, "alice", "alice-sim-password", true).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let r = h
        .http
        .post(h.url("/oauth/revoke"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = refresh(&h, rt, true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn refusals_follow_rfc_6749() {
    let h = Harness::start().await;
    let redirect = "http://127.0.0.1:5001/callback";

    // Unregistered redirect URI or client: an error page, never a redirect.
    for url in [
        authorize_url(&h, "https://evil.example/callback", ""),
        authorize_url(&h, redirect, "").replace(CLIENT, "nobody"),
    ] {
        let r = h.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get("location").is_none());
    }
    // PKCE is required, and only S256.
    for (from, to) in [
        ("code_challenge_method=S256", "code_challenge_method=plain"),
        ("&code_challenge=", "&x="),
    ] {
        let r = h
            .fetch(authorize_url(&h, redirect, "").replace(from, to))
            .await;
        assert!(r.status().is_redirection());
        let q = query_of(r.headers()["location"].to_str().unwrap());
        assert_eq!(q["error"], "invalid_request");
        assert_eq!(q["state"], "st4te");
    }

    // No browser session: a silent authorization asks for a login.
    let r = h.fetch(authorize_url(&h, redirect, "&prompt=none")).await;
    assert_eq!(
        query_of(r.headers()["location"].to_str().unwrap())["error"],
        "login_required"
    );

    // Wrong password: the form again, no code.
    let html = h.fetch_text(authorize_url(&h, redirect, "")).await;
    let r = submit_login(&h, &html, "alice", "nope").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Wrong username or password")
    );

    let q = login(&h, redirect, "alice", "alice-sim-password").await;
    // Wrong verifier, wrong redirect, wrong secret.
    let (status, err) = token(
        &h,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            (
                "code_verifier",
                "another-verifier-another-verifier-another-verifier",
            ),
        ],
        true,
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, _) = code_exchange(&h, &q["code"], "http://127.0.0.1:5001/other", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let r = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth(CLIENT, Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let (status, err) = token(&h, &[("grant_type", "password")], true).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn expired_or_foreign_tokens_are_refused_by_the_api() {
    let h = Harness::with(SimConfig {
        access_token_ttl: Duration::from_secs(3),
        ..SimConfig::for_tests()
    })
    .await;
    let redirect = "http://127.0.0.1:5002/callback";
    let t = sign_in(&h, redirect, "alice", "alice-sim-password", true).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(h.get(access, "/workspaces").await.status(), StatusCode::OK);
    // The id token is signed by the same key but is not an access token for the API.
    let id_token = t["id_token"].as_str().unwrap();
    assert_eq!(
        h.get(id_token, "/workspaces").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A token from another simulator (another key) is refused.
    let other = Harness::with(SimConfig {
        seed: 99,
        ..SimConfig::for_tests()
    })
    .await;
    let oq = login(&other, redirect, "alice", "alice-sim-password").await;
    let (_, ot) = code_exchange(&other, &oq["code"], redirect, true).await;
    assert_eq!(
        h.get(ot["access_token"].as_str().unwrap(), "/workspaces")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    tokio::time::sleep(Duration::from_millis(3200)).await;
    let r = h.get(access, "/workspaces").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED").await;
}
