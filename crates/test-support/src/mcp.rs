//! Raw MCP requests for tests and benchmarks that need to hold the HTTP response themselves
//! (read its stream event by event, or drop it mid-call), where an MCP client would hide it.

use serde_json::{Value, json};

/// A `tools/call` POST (JSON-RPC id 2) on a 2025-11-25 session, ready to send.
pub fn tool_call(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    session: &str,
    tool: &str,
    arguments: Value,
) -> reqwest::RequestBuilder {
    http.post(url)
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": tool, "arguments": arguments}}))
}

/// Opens a 2025-11-25 session the raw way (`initialize`, then `notifications/initialized`,
/// each checked) and returns its `Mcp-Session-Id`. `client` is the `clientInfo` name, which
/// the gateway's logs show.
pub async fn open_session(http: &reqwest::Client, url: &str, bearer: &str, client: &str) -> String {
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": client, "version": "1"}}});
    let r = http
        .post(url)
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "initialize: {}", r.status());
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    drop(r);
    let r = http
        .post(url)
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "initialized");
    session
}

/// One session per benchmark worker, opened in turn ([`open_session`]), and a client whose
/// pool keeps a connection per worker alive.
pub async fn open_sessions(
    url: &str,
    bearer: &str,
    workers: usize,
) -> (reqwest::Client, Vec<String>) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(workers * 2)
        .build()
        .unwrap();
    let mut sessions = Vec::with_capacity(workers);
    for _ in 0..workers {
        sessions.push(open_session(&http, url, bearer, "bench").await);
    }
    (http, sessions)
}
