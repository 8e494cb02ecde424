//! The HTTP side of `/mcp` over real loopback HTTP: authentication, protocol revisions,
//! `Accept` quirks, Host/Origin checks, sessions, body limits and malformed JSON-RPC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ACME, Env, Raw, read};
use reqwest::{Method, StatusCode};
use serde_json::json;

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// The status of an `initialize` POSTed to `url` with alice's PAT and, when given, an
/// `Origin` and a `Host`.
async fn init_status(env: &Env, url: &str, origin: Option<&str>, host: Option<&str>) -> StatusCode {
    let mut r = env
        .http
        .post(url)
        .bearer_auth(&env.alice)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(INIT);
    if let Some(o) = origin {
        r = r.header("origin", o);
    }
    if let Some(h) = host {
        r = r.header("host", h);
    }
    r.send().await.unwrap().status()
}

#[tokio::test]
async fn requests_without_a_usable_bearer_get_401_with_a_challenge_on_every_method() {
    let env = Env::start().await;
    let url = env.mcp_url();
    for method in [Method::GET, Method::POST, Method::DELETE] {
        for auth in [
            None,
            Some("Basic dXNlcjpwYXNz"),
            Some("Bearer"),
            Some("Bearer a b"),
        ] {
            let mut r = env
                .http
                .request(method.clone(), &url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-session-id", "whatever");
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            if method == Method::POST {
                r = r.body(INIT);
            }
            let response = r.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {auth:?}"
            );
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            if auth.is_some() {
                assert!(
                    challenge.contains("error=\"invalid_request\""),
                    "{challenge}"
                );
            }
        }
    }
    // Nothing reached Layer.
    assert_eq!(env.api_requests().await, 0);
    env.shutdown().await;
}

#[tokio::test]
async fn a_pat_layer_rejects_is_401_not_a_tool_error() {
    let env = Env::start().await;
    for pat in [env.alice_revoked.clone(), "layer_pat_made_up".to_owned()] {
        let mut client = env.client(&pat);
        let answer = client.post(serde_json::from_str(INIT).unwrap()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        let challenge = answer.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(!answer.text.contains(&pat), "the token is not echoed");
    }
    env.shutdown().await;
}

#[tokio::test]
async fn layer_unreachable_during_the_pat_check_is_503_with_retry_after() {
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let env = Env::start_with(|c| {
        c.layer_api_url = format!("http://127.0.0.1:{port}/api/v1").parse().unwrap();
        c.upstream_max_attempts = 1;
    })
    .await;
    let mut client = env.client(&env.alice.clone());
    let answer = client.post(serde_json::from_str(INIT).unwrap()).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.get("retry-after").is_some());
    assert!(answer.headers.get("www-authenticate").is_none());
    env.shutdown().await;
}

#[tokio::test]
async fn every_session_revision_initializes_and_lists_the_18_tools() {
    let env = Env::start().await;
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let mut client = env.client(&env.alice.clone());
        client.version = version.to_owned();
        let init = client.initialize().await;
        assert!(
            client.session.is_some(),
            "{version}: a session id is issued"
        );
        let result = init.result();
        assert_eq!(result["protocolVersion"], version);
        assert_eq!(result["serverInfo"]["name"], "layer-mcp-gateway");
        let instructions = result["instructions"].as_str().unwrap();
        assert!(
            instructions.contains("20 Creative Units") && instructions.contains("RATE_LIMITED")
        );
        let tools = client.list_tools().await;
        assert_eq!(
            tools.result()["tools"].as_array().unwrap().len(),
            18,
            "{version}"
        );
    }
    env.shutdown().await;
}

#[tokio::test]
async fn revision_2026_07_28_is_stateless_with_server_discover() {
    let env = Env::start().await;
    let post = |method: &str, name: Option<&str>, params: serde_json::Value| {
        common::stateless(&env, method, name, params)
    };
    let discover = read(
        post("server/discover", None, json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(discover.status, StatusCode::OK, "{discover:?}");
    assert!(
        discover.headers.get("mcp-session-id").is_none(),
        "no session in 2026-07-28"
    );
    let result = discover.result();
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "2026-07-28"),
        "{result}"
    );
    assert!(
        result["instructions"]
            .as_str()
            .unwrap()
            .contains("estimate")
    );

    let call = read(
        post(
            "tools/call",
            Some("list_workspaces"),
            json!({"name": "list_workspaces", "arguments": {}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(call.status, StatusCode::OK, "{call:?}");
    assert_eq!(call.result()["isError"], false, "{:?}", call.message);
    assert_eq!(call.structured()["workspaces"].as_array().unwrap().len(), 2);
    env.shutdown().await;
}

#[tokio::test]
async fn meta_2026_with_an_older_header_is_served_as_the_header_revision() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let id = client.id();
    let answer = client
        .post(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
            "name": "list_workspaces", "arguments": {},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                      "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.result()["isError"], false);
    env.shutdown().await;
}

#[tokio::test]
async fn accept_star_or_one_media_type_still_works_and_gets_plain_json() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let session = client.session.clone().unwrap();
    for accept in [Some("*/*"), Some("application/json"), None] {
        let mut r = env
            .http
            .post(env.mcp_url())
            .bearer_auth(&env.alice)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
        if let Some(a) = accept {
            r = r.header("accept", a);
        }
        let response = r.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{accept:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{accept:?}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["id"], 3);
        assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 18);
    }
    // Initialize itself with */*.
    let response = env
        .http
        .post(env.mcp_url())
        .bearer_auth(&env.alice)
        .header("accept", "*/*")
        .header("content-type", "application/json")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("mcp-session-id").is_some());
    assert_eq!(response.headers()["content-type"], "application/json");
    // Both named: SSE, with the anti-buffering header.
    let answer = client.list_tools().await;
    assert!(answer.content_type.starts_with("text/event-stream"));
    assert_eq!(answer.headers["x-accel-buffering"], "no");
    // A GET with */* opens the session's event stream.
    let response = client.send_accepting(Method::GET, "*/*", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(Raw::content_type(&response).starts_with("text/event-stream"));
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    drop(response);
    // Something no MCP server can produce.
    let response = client
        .send_accepting(Method::POST, "text/html", Some(INIT))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    env.shutdown().await;
}

#[tokio::test]
async fn sse_streams_carry_keep_alive_comments() {
    let env = Env::start_with(|c| c.sse_keep_alive = Duration::from_millis(200)).await;
    let client = env.session(&env.alice.clone()).await;
    let mut response = client
        .send_accepting(Method::GET, "text/event-stream", None)
        .await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !seen.contains(':') || !seen.lines().any(|l| l.starts_with(':')) {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(
        seen.lines().any(|l| l.starts_with(':')),
        "a comment line arrived: {seen:?}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn foreign_origins_and_hosts_are_refused_before_auth() {
    let env = Env::start().await;
    let mcp = env.mcp_url();
    let origin = format!("http://{}", env.gateway.addr);
    let status = |origin, host| init_status(&env, &mcp, origin, host);
    assert_eq!(
        status(Some("https://evil.example"), None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(None, Some("evil.example")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status(Some(&origin), None).await, StatusCode::OK);
    assert_eq!(status(None, None).await, StatusCode::OK);
    // A foreign Origin without credentials is still 403, not 401.
    let anonymous = env.http.post(&mcp).header("origin", "https://evil.example");
    let refused = anonymous.body(INIT).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    env.shutdown().await;
}

#[tokio::test]
async fn a_session_is_usable_only_by_its_owner_and_delete_ends_it() {
    let env = Env::start().await;
    let mut alice = env.session(&env.alice.clone()).await;
    let mut bob = env.client(&env.bob.clone());
    bob.session = alice.session.clone();
    let stolen = bob.list_tools().await;
    assert_eq!(
        stolen.status,
        StatusCode::NOT_FOUND,
        "another user's session looks unknown"
    );
    let mut unknown = env.client(&env.alice.clone());
    unknown.session = Some("not-a-session".into());
    let unknown = unknown.list_tools().await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        stolen.text, unknown.text,
        "the same answer as an unknown session"
    );
    // Bob cannot DELETE it either.
    let r = bob.request(Method::DELETE).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(alice.list_tools().await.status, StatusCode::OK);
    // Alice's DELETE ends it.
    let r = alice.request(Method::DELETE).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(alice.list_tools().await.status, StatusCode::NOT_FOUND);
    env.shutdown().await;
}

#[tokio::test]
async fn the_per_user_session_cap_closes_the_least_recently_used_session() {
    let env = Env::start_with(|c| c.max_sessions_per_user = 2).await;
    let mut first = env.session(&env.alice.clone()).await;
    let mut second = env.session(&env.alice.clone()).await;
    let mut bobs = env.session(&env.bob.clone()).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(first.list_tools().await.status, StatusCode::OK); // first is now more recent than second
    let mut third = env.session(&env.alice.clone()).await;
    assert_eq!(
        second.list_tools().await.status,
        StatusCode::NOT_FOUND,
        "evicted"
    );
    assert_eq!(first.list_tools().await.status, StatusCode::OK);
    assert_eq!(third.list_tools().await.status, StatusCode::OK);
    assert_eq!(
        bobs.list_tools().await.status,
        StatusCode::OK,
        "other users are unaffected"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn idle_sessions_expire() {
    let env = Env::start_with(|c| c.session_idle_timeout = Duration::from_millis(400)).await;
    let mut client = env.session(&env.alice.clone()).await;
    assert_eq!(client.list_tools().await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(client.list_tools().await.status, StatusCode::NOT_FOUND);
    env.shutdown().await;
}

#[tokio::test]
async fn oversized_and_malformed_bodies_get_the_documented_errors() {
    let env = Env::start_with(|c| c.max_request_body_bytes = 64 * 1024).await;
    let client = env.session(&env.alice.clone()).await;
    let send = |body: Vec<u8>| {
        client
            .request(Method::POST)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body)
    };
    let prompt = "x".repeat(100 * 1024);
    let big = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "estimate_forge_price",
        "arguments": {"workspace_id": ACME, "model_id": common::FLUX_2_PRO, "prompt": prompt}}});
    let before = env.api_requests().await;
    let r = send(serde_json::to_vec(&big).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The unread rest of the body makes the connection unusable: the client is told so.
    assert_eq!(r.headers()["connection"], "close");
    let r = send(b"{not json".to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);
    for bad in [
        r#"{"id":1,"method":42}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        r#""hello""#,
    ] {
        let r = send(bad.as_bytes().to_vec()).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32600, "{bad}");
    }
    assert_eq!(env.api_requests().await, before, "nothing reached Layer");
    env.shutdown().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let env = Env::start().await;
    let base = format!("http://{}", env.gateway.addr);
    let r = env
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("x-request-id").is_some());
    assert_eq!(
        env.http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    env.shutdown().await;
}

#[tokio::test]
async fn the_host_allow_list_follows_the_public_url() {
    let env = Env::start_with(|c| {
        c.public_url = "https://mcp.example.test".parse().unwrap();
        c.allowed_origins = vec!["https://mcp.example.test".into()];
    })
    .await;
    let url = format!("http://{}/mcp", env.gateway.addr);
    assert_eq!(
        init_status(&env, &url, None, Some("mcp.example.test")).await,
        StatusCode::OK
    );
    assert_eq!(
        init_status(&env, &url, None, None).await,
        StatusCode::FORBIDDEN,
        "the bind address is not the public host"
    );
    assert_eq!(env.gateway.mcp_url(), "https://mcp.example.test/mcp");
    env.shutdown().await;
}
