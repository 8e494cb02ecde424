//! What the MCP specification says, checked over real loopback HTTP: methods answer as the
//! declared capabilities say, pagination cursors, the Host allow-list on loopback, the
//! stateless revision's rules, and batches on 2025-03-26.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Env, read, stateless, stateless_meta};
use reqwest::StatusCode;
use serde_json::{Value, json};

const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// Undeclared capabilities: every one of their methods is "method not found", in a session
/// and statelessly, and `server/discover` declares only what is served.
#[tokio::test]
async fn undeclared_methods_are_not_found_and_discover_declares_what_is_served() {
    let env = Env::start().await;
    let undeclared = [
        ("prompts/list", json!({}), None),
        ("prompts/get", json!({"name": "x"}), Some("x")),
        ("resources/list", json!({}), None),
        ("resources/templates/list", json!({}), None),
        (
            "resources/read",
            json!({"uri": "layer://x"}),
            Some("layer://x"),
        ),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "x"}, "argument": {"name": "a", "value": "b"}}),
            None,
        ),
    ];
    let mut client = env.session(&env.alice.clone()).await;
    for (method, params, _) in &undeclared {
        let id = client.id();
        let answer = client
            .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert_eq!(
            answer.error()["code"],
            METHOD_NOT_FOUND,
            "{method} in a session: {answer:?}"
        );
    }
    for (method, params, name) in &undeclared {
        let answer = read(
            stateless(&env, method, *name, params.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            answer.error()["code"],
            METHOD_NOT_FOUND,
            "{method} statelessly: {answer:?}"
        );
    }
    let discover = read(
        stateless(&env, "server/discover", None, json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let capabilities = discover.result()["capabilities"]
        .as_object()
        .unwrap()
        .clone();
    let declared: Vec<&str> = capabilities.keys().map(String::as_str).collect();
    assert_eq!(declared, ["tools"], "{capabilities:?}");
    let init = env.client(&env.alice).initialize().await;
    let declared: Vec<String> = init.result()["capabilities"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(declared, ["tools"]);
    env.shutdown().await;
}

/// `tools/list` is one page, so no cursor is one we gave out: an invalid cursor is -32602,
/// in a session and statelessly, instead of the whole list.
#[tokio::test]
async fn an_invalid_tools_list_cursor_is_invalid_params() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let id = client.id();
    let answer = client
        .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {"cursor": "not-a-cursor"}}))
        .await;
    assert_eq!(answer.error()["code"], INVALID_PARAMS, "{answer:?}");
    let answer = read(
        stateless(&env, "tools/list", None, json!({"cursor": "not-a-cursor"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.error()["code"], INVALID_PARAMS, "{answer:?}");
    // Without a cursor, the whole list.
    let answer = client.list_tools().await;
    assert!(!answer.result()["tools"].as_array().unwrap().is_empty());
    env.shutdown().await;
}

/// The list tools' `cursor` goes to Layer, which refuses one it did not give out: the agent
/// gets a tool error naming the cursor, never the first page again.
#[tokio::test]
async fn an_invalid_tool_cursor_is_refused() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    for (tool, arguments) in [
        ("list_workspaces", json!({"cursor": "not-a-cursor"})),
        (
            "list_models",
            json!({"workspace_id": common::ACME, "cursor": "not-a-cursor"}),
        ),
        (
            "list_workflows",
            json!({"workspace_id": common::ACME, "cursor": "not-a-cursor"}),
        ),
    ] {
        let error = client.fails(tool, arguments).await;
        assert!(error.to_string().contains("cursor"), "{tool}: {error}");
    }
    env.shutdown().await;
}

/// On a loopback address, `localhost`, `127.0.0.1` and `[::1]` with the port name the same
/// host; a foreign Host (DNS rebinding) is still refused.
#[tokio::test]
async fn loopback_host_aliases_are_the_same_host() {
    let env = Env::start().await;
    let port = env.gateway.addr.port();
    let initialize = |host: String| {
        env.http
            .post(env.mcp_url())
            .bearer_auth(&env.alice)
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
            .send()
    };
    for host in [
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        let response = initialize(host.clone()).await.unwrap();
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::OK,
            "{host}: {}",
            response.text().await.unwrap()
        );
    }
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        let response = initialize(host.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{host}");
    }
    env.shutdown().await;
}

/// 2026-07-28 has no sessions: a leftover `Mcp-Session-Id` on a stateless request is
/// ignored (not 404), whether unknown or another user's.
#[tokio::test]
async fn a_stale_session_id_on_a_stateless_request_is_ignored() {
    let env = Env::start().await;
    let bobs = env.session(&env.bob.clone()).await.session.unwrap();
    for session in ["stale-session-id".to_owned(), bobs] {
        let answer = read(
            stateless(
                &env,
                "tools/call",
                Some("list_workspaces"),
                json!({"name": "list_workspaces", "arguments": {}}),
            )
            .header("mcp-session-id", &session)
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.result()["isError"], false, "{answer:?}");
        assert!(answer.headers.get("mcp-session-id").is_none());
    }
    // An older revision still checks it.
    let mut client = env.client(&env.alice);
    client.session = Some("stale-session-id".to_owned());
    assert_eq!(client.list_tools().await.status, StatusCode::NOT_FOUND);
    env.shutdown().await;
}

/// 2026-07-28 results carry the server's identity in `_meta` (the spec's SHOULD); older
/// revisions got it at `initialize` and do not.
#[tokio::test]
async fn stateless_results_carry_server_info_in_meta() {
    let env = Env::start().await;
    const KEY: &str = "io.modelcontextprotocol/serverInfo";
    for (method, name, params) in [
        ("server/discover", None, json!({})),
        ("tools/list", None, json!({})),
        (
            "tools/call",
            Some("list_workspaces"),
            json!({"name": "list_workspaces", "arguments": {}}),
        ),
    ] {
        let answer = read(stateless(&env, method, name, params).send().await.unwrap()).await;
        let info = &answer.result()["_meta"][KEY];
        assert_eq!(info["name"], "layer-mcp-gateway", "{method}: {answer:?}");
        assert!(info["version"].is_string(), "{method}");
    }
    let mut client = env.session(&env.alice.clone()).await;
    let answer = client.list_tools().await;
    assert!(
        answer.result().get("_meta").is_none(),
        "{:?}",
        answer.result().get("_meta")
    );
    env.shutdown().await;
}

/// Without a session, a request whose `_meta` says 2026-07-28 while its
/// `MCP-Protocol-Version` header names an older revision (and without `Mcp-Method` /
/// `Mcp-Name`) is the spec's header mismatch: 400 with -32020, not served.
#[tokio::test]
async fn a_sessionless_meta_and_header_mismatch_is_refused() {
    let env = Env::start().await;
    for (method, params) in [
        (
            "tools/call",
            json!({"name": "list_workspaces", "arguments": {}, "_meta": stateless_meta()}),
        ),
        ("tools/list", json!({"_meta": stateless_meta()})),
        ("server/discover", json!({"_meta": stateless_meta()})),
    ] {
        let answer = read(
            env.http
                .post(env.mcp_url())
                .bearer_auth(&env.alice)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2025-11-25")
                .json(&json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{method}: {answer:?}"
        );
        assert_eq!(answer.error()["code"], -32020, "{method}: {answer:?}");
        assert_eq!(answer.message.as_ref().unwrap()["id"], 9, "{method}");
    }
    env.shutdown().await;
}

/// 2025-03-26 requires servers to accept JSON-RPC batches: an array of requests and
/// notifications gets an array with a response per request. Later revisions removed
/// batches, so they still get 400 with -32600.
#[tokio::test]
async fn batches_are_served_on_2025_03_26_only() {
    let env = Env::start().await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": "a", "method": "tools/list", "params": {}},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "zz"}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_workspaces", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 3, "method": "no/such/method", "params": {}},
        {"jsonrpc": "2.0", "id": 4},
    ]);
    let mut client = env.client(&env.alice);
    client.version = "2025-03-26".to_owned();
    client.initialize().await;
    // With the revision's header, and without (a 2025-03-26 client need not send it).
    for header in [Some("2025-03-26"), None] {
        let mut r = client
            .request(reqwest::Method::POST)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .json(&batch);
        if let Some(h) = header {
            r = r.header("mcp-protocol-version", h);
        }
        let response = r.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{header:?}");
        assert_eq!(response.headers()["content-type"], "application/json");
        let answers: Vec<Value> = response.json().await.unwrap();
        assert_eq!(answers.len(), 4, "{answers:?}");
        assert_eq!(answers[0]["id"], "a");
        assert!(!answers[0]["result"]["tools"].as_array().unwrap().is_empty());
        assert_eq!(answers[1]["id"], 2);
        assert_eq!(answers[1]["result"]["isError"], false, "{answers:?}");
        assert_eq!(answers[2]["id"], 3);
        assert_eq!(answers[2]["error"]["code"], METHOD_NOT_FOUND);
        assert_eq!(answers[3]["id"], 4);
        assert_eq!(answers[3]["error"]["code"], -32600);
    }
    // Notifications only: nothing to answer.
    let response = client
        .request(reqwest::Method::POST)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-03-26")
        .json(&json!([{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "zz"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // An empty batch is one invalid request; `initialize` may not be batched.
    for body in [
        json!([]),
        json!([{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}]),
    ] {
        let answer = client.post(body.clone()).await;
        let message = answer.message.clone().unwrap();
        let error = if message.is_array() {
            message[0]["error"].clone()
        } else {
            message["error"].clone()
        };
        assert_eq!(error["code"], -32600, "{body}: {answer:?}");
    }
    // Later revisions: refused.
    for version in ["2025-06-18", "2025-11-25"] {
        let mut client = env.client(&env.alice);
        client.version = version.to_owned();
        client.initialize().await;
        let answer = client.post(batch.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{version}");
        assert_eq!(answer.error()["code"], -32600, "{version}");
    }
    env.shutdown().await;
}
