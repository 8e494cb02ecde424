//! The older HTTP+SSE transport (2024-11-05) on the gateway, over real loopback HTTP: the
//! same authentication, tools, ownership and error shapes as streamable HTTP on `/mcp`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Env, reply_to};
use legacy_sse::client::{self, Connection};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use url::Url;

fn url(env: &Env, path: &str) -> Url {
    Url::parse(&env.mcp_url()).unwrap().join(path).unwrap()
}

async fn open(env: &Env, path: &str, pat: &str) -> Connection {
    client::open(&env.http, &url(env, path), client::bearer(pat))
        .await
        .expect("open an old-style stream")
}

async fn post(connection: &Connection, body: Value) {
    let response = connection.post_json(&body).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{body}");
}

async fn initialize(connection: &mut Connection) {
    post(
        connection,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {},
            "clientInfo": {"name": "gateway-tests", "version": "1"}}}),
    )
    .await;
    let reply = reply_to(connection, 0).await;
    assert_eq!(reply["result"]["protocolVersion"], "2024-11-05");
    post(
        connection,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
}

fn call(id: i64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

#[tokio::test]
async fn an_old_style_get_on_mcp_opens_a_stream_and_an_rmcp_client_uses_the_tools() {
    let env = Env::start().await;
    let transport = client::connect(&env.mcp_url(), client::bearer(&env.alice))
        .await
        .unwrap();
    assert_eq!(transport.endpoint().path(), "/messages");
    let mcp = ().serve(transport).await.expect("initialize over the old transport");
    let tools = mcp.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 18, "the same catalogue as streamable HTTP");

    let result = mcp
        .call_tool(CallToolRequestParams::new("list_workspaces"))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let workspaces = result.structured_content.expect("structured content");
    common::assert_lists_acme(&workspaces);
    mcp.cancel().await.unwrap();
    env.shutdown().await;
}

#[tokio::test]
async fn sse_is_an_alias_and_tool_errors_have_the_same_shape() {
    let env = Env::start().await;
    let mut connection = open(&env, "/sse", &env.alice).await;
    assert_eq!(connection.response_headers["x-accel-buffering"], "no");
    initialize(&mut connection).await;
    post(
        &connection,
        call(1, "get_workspace", json!({"workspace_id": "not-a-uuid"})),
    )
    .await;
    let reply = reply_to(&mut connection, 1).await;
    assert_eq!(reply["result"]["isError"], true);
    let error = &reply["result"]["structuredContent"];
    assert_eq!(error["code"], "INVALID_INPUTS");
    assert_eq!(error["status"], 400);
    // The request id of the POST that carried the call, as on streamable HTTP.
    assert!(error["request_id"].is_string(), "{error}");
    env.shutdown().await;
}

#[tokio::test]
async fn the_get_and_every_post_need_a_bearer_with_a_challenge() {
    let env = Env::start().await;
    for path in ["/mcp", "/sse"] {
        for auth in [
            None,
            Some("Bearer".to_owned()),
            Some(format!("Bearer {}", env.alice_revoked)),
        ] {
            let mut request = env
                .http
                .get(url(&env, path))
                .header("accept", "text/event-stream");
            if let Some(auth) = &auth {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{path} {auth:?}"
            );
            assert!(
                response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer")
            );
        }
    }

    let mut connection = open(&env, "/mcp", &env.alice).await;
    initialize(&mut connection).await;
    // A POST to a live session without credentials (or with a revoked one) is 401 too,
    // checked before anything about the session.
    for headers in [HeaderMap::new(), client::bearer(&env.alice_revoked)] {
        let response = env
            .http
            .post(connection.endpoint.clone())
            .headers(headers)
            .header("content-type", "application/json")
            .body(call(1, "list_workspaces", json!({})).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key("www-authenticate"));
    }
    let response = env.http.post(url(&env, "/messages")).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "even without a sessionId"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn another_users_session_is_404_like_an_unknown_one() {
    let env = Env::start().await;
    let mut alice = open(&env, "/mcp", &env.alice).await;
    initialize(&mut alice).await;
    let session = alice.session_id().unwrap();
    let body = call(1, "list_workspaces", json!({})).to_string();
    let post_as_bob = |query: String| {
        env.http
            .post(format!("{}?{query}", url(&env, "/messages")))
            .bearer_auth(&env.bob)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let theirs = post_as_bob(format!("sessionId={session}")).await.unwrap();
    let unknown = post_as_bob("sessionId=0123456789abcdef0123456789abcdef".to_owned())
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(theirs.text().await.unwrap(), unknown.text().await.unwrap());
    // Nothing ran for bob in alice's session, which still works for her.
    post(&alice, call(2, "list_workspaces", json!({}))).await;
    let reply = reply_to(&mut alice, 2).await;
    assert_ne!(reply["result"]["isError"], true);
    env.shutdown().await;
}

#[tokio::test]
async fn bad_posts_get_the_documented_errors() {
    let env = Env::start_with(|config| config.max_request_body_bytes = 4096).await;
    let mut connection = open(&env, "/mcp", &env.alice).await;
    initialize(&mut connection).await;

    let response = env
        .http
        .post(url(&env, "/messages"))
        .bearer_auth(&env.alice)
        .body(call(1, "list_workspaces", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "no sessionId");

    let response = connection.post_raw("{\"jsonrpc\":").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700);

    let response = connection
        .post_json(&call(
            2,
            "list_workspaces",
            json!({"pad": "x".repeat(5000)}),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // None of it reached Layer or the session, which goes on.
    post(&connection, call(3, "list_workspaces", json!({}))).await;
    assert_eq!(reply_to(&mut connection, 3).await["id"], 3);
    env.shutdown().await;
}

#[tokio::test]
async fn streamable_http_on_mcp_is_unchanged() {
    let env = Env::start().await;
    // A POST is always streamable HTTP, whatever it accepts.
    let mut streamable = env.session(&env.alice).await;
    assert!(streamable.session.is_some());
    let tools = streamable.list_tools().await;
    assert_eq!(tools.result()["tools"].as_array().unwrap().len(), 18);
    // A GET naming a session is the streamable transport's: an unknown one is its 404.
    let response = env
        .http
        .get(env.mcp_url())
        .bearer_auth(&env.alice)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", "no-such-session")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    env.shutdown().await;
}

#[tokio::test]
async fn shutting_the_gateway_down_closes_old_style_streams() {
    let env = Env::start().await;
    let mut connection = open(&env, "/mcp", &env.alice).await;
    initialize(&mut connection).await;
    let shutdown = tokio::spawn(env.gateway.shutdown());
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match connection.events.next_frame().await {
                None => return true,
                Some(Ok(_)) => continue,
                Some(Err(_)) => return false,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(ended, "the stream ends cleanly, so the client reconnects");
    tokio::time::timeout(Duration::from_secs(15), shutdown)
        .await
        .expect("the gateway stops")
        .unwrap();
    env.sim.shutdown().await;
}
