//! The public edge against hostile input: log forging, error codes for malformed JSON-RPC,
//! and keep-alive after a refusal sent before the body was read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Env, Raw, read};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A newline that would start a forged log line, and an ANSI colour escape.
const HOSTILE: &str = "x\nFORGED-LINE level=ERROR \u{1b}[31mred\u{1b}[0m\r";

/// POSTs `body` as is (not re-encoded) with the usual MCP headers.
async fn post_text(raw: &Raw, body: &str) -> common::Answer {
    let r = raw
        .request(reqwest::Method::POST)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", raw.version.clone())
        .body(body.to_owned());
    read(r.send().await.unwrap()).await
}

#[tokio::test]
async fn a_jsonrpc_id_with_control_characters_is_refused() {
    let env = Env::start().await;
    let mut raw = env.client(&env.alice);
    for id in ["a\nb", "\u{1b}[31mred", "tab\there", "nul\u{0}"] {
        let answer = raw
            .post(
                json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "edge", "version": "1"}}}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{id:?}: {answer:?}");
        assert!(answer.content_type.starts_with("application/json"));
        assert_eq!(answer.error()["code"], -32600, "{answer:?}");
        assert_eq!(answer.message.as_ref().unwrap()["id"], Value::Null);
    }
    // A plain string id still works.
    let answer = raw
        .post(
            json!({"jsonrpc": "2.0", "id": "plain-1", "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "edge", "version": "1"}}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    env.shutdown().await;
}

#[tokio::test]
async fn the_old_transport_refuses_a_jsonrpc_id_with_control_characters() {
    let env = Env::start().await;
    let url = env.mcp_url().replace("/mcp", "/messages");
    let response = env
        .http
        .post(format!("{url}?sessionId=00000000000000000000000000000000"))
        .bearer_auth(&env.alice)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":"a\nb\u001b[31m","method":"ping"}"#)
        .send()
        .await
        .unwrap();
    let answer = read(response).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(answer.error()["code"], -32600, "{answer:?}");
    assert_eq!(answer.message.as_ref().unwrap()["id"], Value::Null);
    env.shutdown().await;
}

#[tokio::test]
async fn request_strings_cannot_forge_text_log_lines() {
    let sim = layer_sim::start(layer_sim::SimConfig::for_tests())
        .await
        .unwrap();
    let mut served = common::serve(&sim, &[], &[("RUST_LOG", "trace")]);
    let port = served.port;
    let mut raw = common::served_client(port, &sim, "2025-06-18").await;
    let (http, pat) = (raw.http.clone(), raw.pat.clone().unwrap());
    // The revision in `_meta` is logged (a sessionless request served as that revision).
    let _ = raw
        .post(
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {
            "_meta": {"io.modelcontextprotocol/protocolVersion": format!("2099-01-01{HOSTILE}")}}}),
        )
        .await;
    // The id, a tool name, and a session id of either transport.
    let _ = raw
        .post(json!({"jsonrpc": "2.0", "id": HOSTILE, "method": "tools/list"}))
        .await;
    raw.initialize().await;
    let _ = raw.call(HOSTILE, json!({})).await;
    let _ = raw
        .post(json!({"jsonrpc": "2.0", "id": 9, "method": HOSTILE, "params": {}}))
        .await;
    let _ = http
        .post(format!(
            "http://127.0.0.1:{port}/messages?sessionId=x%0AFORGED-LINE%1B%5B31m%0D"
        ))
        .bearer_auth(&pat)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    served.child.start_kill().unwrap();
    let _ = served.child.wait().await;
    let logs = served.logs.await.unwrap();
    let bytes = logs.as_bytes();
    assert!(logs.contains("gateway listening"), "{logs}");
    assert!(
        !bytes.contains(&0x1b),
        "a raw ESC byte reached the log:\n{logs}"
    );
    assert!(!bytes.contains(&b'\r'), "a raw CR reached the log");
    for line in logs.lines() {
        assert!(!line.starts_with("FORGED"), "a forged line: {line:?}");
    }
    assert!(
        logs.contains("FORGED"),
        "the hostile strings were logged (escaped): the test reaches the logs"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tools_call_without_object_params_is_invalid_params() {
    let env = Env::start().await;
    let mut raw = env.session(&env.alice).await;
    for (params, missing) in [
        (None, "params"),
        (Some(json!([])), "params"),
        (Some(json!("list_workspaces")), "params"),
        (Some(json!({"arguments": {}})), "name"),
    ] {
        let mut body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call"});
        if let Some(params) = params.clone() {
            body["params"] = params;
        }
        let answer = raw.post(body).await;
        let error = answer.error();
        assert_eq!(error["code"], -32602, "{params:?}: {answer:?}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(missing), "{params:?}: {message}");
        assert_eq!(answer.message.as_ref().unwrap()["id"], 7);
    }
    env.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_json_key_is_an_invalid_request() {
    let env = Env::start().await;
    let raw = env.session(&env.alice).await;
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_workspaces","arguments":{"a":1,"a":2}}}"#,
    ] {
        let answer = post_text(&raw, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {answer:?}");
        assert!(
            answer.content_type.starts_with("application/json"),
            "{body}: {answer:?}"
        );
        assert_eq!(answer.error()["code"], -32600, "{body}: {answer:?}");
        assert!(
            answer.error()["message"]
                .as_str()
                .unwrap()
                .contains("duplicate"),
            "{answer:?}"
        );
        assert_eq!(answer.message.as_ref().unwrap()["id"], Value::Null);
    }
    env.shutdown().await;
}

/// One HTTP/1.1 response read from a raw socket: status, headers (lower-case names), body.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (Content-Length or chunked body) from `socket`, keeping what follows
/// in `buffer`. `None` when the connection closed first.
async fn read_response(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<RawResponse> {
    async fn fill(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
        let mut chunk = [0u8; 4096];
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }
    let end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if !fill(socket, buffer).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    buffer.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let response = RawResponse { status, headers };
    if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().ok()?;
        while buffer.len() < length {
            if !fill(socket, buffer).await {
                return None;
            }
        }
        buffer.drain(..length);
    } else if response.header("transfer-encoding") == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(at) = buffer.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                if !fill(socket, buffer).await {
                    return None;
                }
            };
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&buffer[..line_end])
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            while buffer.len() < line_end + 2 + size + 2 {
                if !fill(socket, buffer).await {
                    return None;
                }
            }
            buffer.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    }
    Some(response)
}

#[tokio::test]
async fn early_refusals_keep_the_connection_usable_or_close_it() {
    let env = Env::start().await;
    let addr = env.gateway.addr;
    let host = format!("127.0.0.1:{}", addr.port());
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let cases = [
        (
            401,
            format!("Host: {host}\r\nAuthorization: Bearer not-a-token\r\n"),
        ),
        (
            403,
            format!(
                "Host: evil.example\r\nAuthorization: Bearer {}\r\n",
                env.alice
            ),
        ),
        (
            403,
            format!(
                "Host: {host}\r\nOrigin: https://evil.example\r\nAuthorization: Bearer {}\r\n",
                env.alice
            ),
        ),
        (
            404,
            format!(
                "Host: {host}\r\nAuthorization: Bearer {}\r\nMcp-Session-Id: no-such-session\r\nMcp-Protocol-Version: 2025-11-25\r\n",
                env.alice
            ),
        ),
    ];
    for (expected, headers) in cases {
        for pause_first in [true, false] {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /mcp HTTP/1.1\r\n{headers}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            let mut buffer = Vec::new();
            let first = if pause_first {
                // The body comes in a second write, a moment after the headers.
                tokio::time::sleep(Duration::from_millis(200)).await;
                socket.write_all(body.as_bytes()).await.unwrap();
                tokio::time::timeout(
                    Duration::from_secs(10),
                    read_response(&mut socket, &mut buffer),
                )
                .await
                .expect("an answer")
            } else {
                // The client waits for the refusal, then sends the body anyway.
                let first = tokio::time::timeout(
                    Duration::from_secs(10),
                    read_response(&mut socket, &mut buffer),
                )
                .await
                .expect("an answer");
                let _ = socket.write_all(body.as_bytes()).await;
                first
            };
            let first = first.expect("a first response");
            assert_eq!(first.status, expected, "{headers}");
            let closes = first
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            // A small body that follows its headers at once is read, keeping the connection.
            assert!(!(pause_first && closes), "{expected}: closed needlessly");
            if closes {
                continue;
            }
            let second = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let sent = socket.write_all(second.as_bytes()).await;
            let answer = match sent {
                Ok(()) => tokio::time::timeout(
                    Duration::from_secs(10),
                    read_response(&mut socket, &mut buffer),
                )
                .await
                .expect("an answer in time"),
                Err(_) => None,
            };
            let answer = answer.unwrap_or_else(|| {
                panic!(
                    "{expected} (pause first: {pause_first}) without `Connection: close`, \
                     yet the connection could not carry another request"
                )
            });
            assert_eq!(answer.status, 200, "{headers}");
        }
    }
    env.shutdown().await;
}
