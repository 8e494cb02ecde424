//! The old HTTP+SSE transport over real HTTP on loopback, with a tiny handler.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use legacy_sse::Config;
use legacy_sse::client::{self, Frame};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

fn first_text(result: &Value) -> &str {
    result["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn a_stream_starts_with_the_endpoint_event() {
    let server = TestServer::start(Config {
        messages_path: "/prefix/messages".into(),
        ..Config::default()
    })
    .await;
    let response = server
        .http
        .get(server.url("/sse"))
        .header("x-user", "alice")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    let mut events = client::EventReader::new(response);
    let Some(Ok(Frame::Event { event, data })) = events.next_frame().await else {
        panic!("no first event");
    };
    assert_eq!(event, "endpoint");
    let id = data
        .strip_prefix("/prefix/messages?sessionId=")
        .unwrap_or_else(|| panic!("endpoint data {data:?}"));
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

#[tokio::test]
async fn keep_alive_comments_fill_the_silences() {
    let server = TestServer::start(Config {
        keep_alive: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    let mut connection = server.open("alice").await;
    let frame = tokio::time::timeout(Duration::from_secs(2), connection.events.next_frame())
        .await
        .expect("a frame within 2 s")
        .unwrap()
        .unwrap();
    assert_eq!(frame, Frame::Comment("keep-alive".into()));
}

#[tokio::test]
async fn an_rmcp_client_initializes_lists_and_calls_over_the_old_transport() {
    let server = TestServer::default().await;
    let transport = client::connect(server.url("/sse").as_str(), user_headers("alice"))
        .await
        .unwrap();
    let mcp = ().serve(transport).await.expect("initialize");
    let info = mcp.peer_info().expect("server info");
    assert!(info.capabilities.tools.is_some());

    let tools = mcp.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ["echo", "whoami", "slow", "flood"]);

    let echo = mcp
        .call_tool(
            CallToolRequestParams::new("echo")
                .with_arguments(json!({"text": "hello"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(echo.content[0].as_text().unwrap().text, "hello");

    // The handler sees the POST that delivered the call, as on streamable HTTP.
    let whoami = mcp
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    assert_eq!(
        whoami.content[0].as_text().unwrap().text,
        "alice POST /messages"
    );
    mcp.cancel().await.unwrap();
    eventually("the stream closes", Duration::from_secs(5), || {
        server.sse.open_streams() == 0
    })
    .await;
}

#[tokio::test]
async fn posts_get_202_and_replies_go_out_on_the_stream() {
    let server = TestServer::default().await;
    let mut connection = server.open("alice").await;
    let response = connection
        .post_json(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}}),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.unwrap(), "Accepted");
    let reply = reply_to(&mut connection, 0).await;
    assert_eq!(reply["result"]["protocolVersion"], "2024-11-05");
    send(
        &connection,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;

    // A batch: one POST, two replies.
    send(
        &connection,
        json!([
            call(1, "echo", json!({"text": "one"})),
            call(2, "echo", json!({"text": "two"}))
        ]),
    )
    .await;
    let mut texts = vec![];
    for _ in 0..2 {
        let reply = next_message(&mut connection).await;
        texts.push(first_text(&reply).to_owned());
    }
    texts.sort();
    assert_eq!(texts, ["one", "two"]);
}

#[tokio::test]
async fn a_post_without_session_id_is_400() {
    let server = TestServer::default().await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    for query in ["", "?sessionId=", "?session=abc"] {
        let response = server.post(Some("alice"), query, ping).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["error"]["code"], -32600);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("sessionId")
        );
    }
}

#[tokio::test]
async fn an_unknown_or_ended_session_is_404() {
    let server = TestServer::default().await;
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    for id in ["0123456789abcdef0123456789abcdef", "../../etc", "x"] {
        let response = server
            .post(Some("alice"), &format!("?sessionId={id}"), ping)
            .await;
        assert_eq!(response.status(), 404, "{id}");
    }

    let connection = server.open_initialized("alice").await;
    let session = connection.session_id().unwrap();
    drop(connection);
    eventually("the stream closes", Duration::from_secs(5), || {
        server.sse.open_streams() == 0
    })
    .await;
    // Unregistering happens just after; a POST may need a moment to see it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let response = server
            .post(Some("alice"), &format!("?sessionId={session}"), ping)
            .await;
        if response.status() == 404 {
            assert_eq!(
                response.text().await.unwrap(),
                "Not Found: Session not found"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn malformed_json_is_400_with_a_parse_error() {
    let server = TestServer::default().await;
    let connection = server.open_initialized("alice").await;
    let response = connection
        .post_raw("{\"jsonrpc\": \"2.0\", ")
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], Value::Null);
    assert_eq!(body["error"]["code"], -32700);

    // JSON, but not a message a client may send: -32600, echoing the id when there is one.
    for (bad, id) in [
        (json!({"jsonrpc": "2.0", "id": 7}), json!(7)),
        (json!({"hello": "world"}), Value::Null),
        (json!([]), Value::Null),
    ] {
        let response = connection.post_json(&bad).await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], -32600, "{bad}");
        assert_eq!(body["id"], id, "{bad}");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = TestServer::start(Config {
        max_body_bytes: 1024,
        ..Config::default()
    })
    .await;
    let mut connection = server.open_initialized("alice").await;
    let big = call(5, "echo", json!({"text": "y".repeat(2000)})).to_string();

    // Declared length over the limit.
    let response = connection.post_raw(big.clone()).await.unwrap();
    assert_eq!(response.status(), 413);
    // The unread rest of the body makes the connection unusable: the client is told so.
    assert_eq!(response.headers()["connection"], "close");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1024 bytes")
    );

    // No declared length (chunked): counted while reading.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let response = connection
        .post_raw(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    // Nothing was delivered; the session still works.
    send(&connection, call(6, "echo", json!({"text": "small"}))).await;
    let reply = next_message(&mut connection).await;
    assert_eq!(reply["id"], 6);
}

#[tokio::test]
async fn another_identitys_session_is_404_like_an_unknown_one() {
    let server = TestServer::default().await;
    let mut alice = server.open_initialized("alice").await;
    let session = alice.session_id().unwrap();
    let echo = call(1, "echo", json!({"text": "from bob"})).to_string();

    let as_bob = server
        .post(Some("bob"), &format!("?sessionId={session}"), &echo)
        .await;
    let unknown = server
        .post(
            Some("bob"),
            "?sessionId=0123456789abcdef0123456789abcdef",
            &echo,
        )
        .await;
    assert_eq!(as_bob.status(), 404);
    assert_eq!(unknown.status(), 404);
    let (bob_headers, unknown_headers) = (as_bob.headers().clone(), unknown.headers().clone());
    assert_eq!(bob_headers["content-type"], unknown_headers["content-type"]);
    assert_eq!(as_bob.text().await.unwrap(), unknown.text().await.unwrap());

    // Nothing reached alice's session, which still works for her.
    send(&alice, call(2, "echo", json!({"text": "from alice"}))).await;
    let reply = next_message(&mut alice).await;
    assert_eq!(reply["id"], 2);
    assert_eq!(first_text(&reply), "from alice");
}

#[tokio::test]
async fn a_request_without_an_identity_is_refused() {
    let server = TestServer::default().await;
    let response = server.http.get(server.url("/sse")).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let alice = server.open_initialized("alice").await;
    let session = alice.session_id().unwrap();
    let response = server
        .post(
            None,
            &format!("?sessionId={session}"),
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        )
        .await;
    assert_eq!(response.status(), 500);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let server = TestServer::start(stuck_reader_config()).await;
    stops_reading_and_is_disconnected(server).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_with_split_connect_info() {
    let server = TestServer::start_split(stuck_reader_config()).await;
    stops_reading_and_is_disconnected(server).await;
}

fn stuck_reader_config() -> Config {
    Config {
        backlog: 4,
        slow_reader_timeout: Duration::from_millis(500),
        ..Config::default()
    }
}

async fn stops_reading_and_is_disconnected(server: TestServer) {
    let mut connection = server.open_initialized("alice").await;
    let session = connection.session_id().unwrap();
    // 4000 notifications of 16 KiB (64 MiB) cannot all fit in socket buffers and the
    // backlog of a client that reads nothing.
    send(
        &connection,
        call(1, "flood", json!({"count": 4000, "size": 16384})),
    )
    .await;
    eventually(
        "the stream of a client that does not read is closed",
        Duration::from_secs(20),
        || server.sse.open_streams() == 0,
    )
    .await;
    eventually(
        "the flooding call is cancelled",
        Duration::from_secs(5),
        || Probe::get(&server.probe.flood_dropped) == 1,
    )
    .await;
    let response = connection
        .post_json(&call(2, "echo", json!({"text": "late"})))
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "session {session} should be gone");
    // The stream could not end by itself (nothing is written to a client that does not
    // read), so its connection is closed under it: what the socket buffers held can still be
    // read, then the response breaks off.
    eventually(
        "the stuck connection is closed",
        Duration::from_secs(5),
        || server.sse.stats().stuck_connections_closed == 1,
    )
    .await;
    assert_eq!(
        read_to_end(&mut connection, Duration::from_secs(20)).await,
        End::Broken
    );
}

#[tokio::test]
async fn a_burst_to_a_client_that_reads_is_delivered_in_full() {
    let server = TestServer::start(Config {
        backlog: 4,
        ..Config::default()
    })
    .await;
    let mut connection = server.open_initialized("alice").await;
    send(
        &connection,
        call(1, "flood", json!({"count": 2000, "size": 1000})),
    )
    .await;
    let mut notifications = 0;
    let reply = loop {
        let message = next_message(&mut connection).await;
        if message["method"] == "notifications/message" {
            notifications += 1;
        } else {
            break message;
        }
    };
    assert_eq!(notifications, 2000);
    assert_eq!(first_text(&reply), "flooded");
    assert_eq!(server.sse.open_streams(), 1);
}

#[tokio::test]
async fn closing_the_stream_cancels_the_session_and_its_requests() {
    // A long keep-alive: the close is noticed without the server writing anything.
    let server = TestServer::start(Config {
        keep_alive: Duration::from_secs(60),
        ..Config::default()
    })
    .await;
    let connection = server.open_initialized("alice").await;
    send(&connection, call(1, "slow", json!({}))).await;
    server.slow_call_started().await;
    drop(connection);
    server
        .slow_call_dropped("the running call is dropped when its stream closes")
        .await;
    assert_eq!(server.sse.open_streams(), 0);
}

#[tokio::test]
async fn a_client_can_cancel_a_request() {
    let server = TestServer::default().await;
    let mut connection = server.open_initialized("alice").await;
    send(&connection, call(1, "slow", json!({}))).await;
    server.slow_call_started().await;
    send(
        &connection,
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
               "params": {"requestId": 1, "reason": "changed my mind"}}),
    )
    .await;
    server
        .slow_call_dropped("the cancelled call is dropped")
        .await;
    // The session goes on.
    send(&connection, call(2, "echo", json!({"text": "still here"}))).await;
    assert_eq!(
        first_text(&reply_to(&mut connection, 2).await),
        "still here"
    );
}

#[tokio::test]
async fn shutdown_lets_running_requests_finish_then_closes_streams() {
    let server = TestServer::start(Config {
        shutdown_drain: Duration::from_secs(10),
        ..Config::default()
    })
    .await;
    let mut connection = server.open_initialized("alice").await;
    send(&connection, call(1, "slow", json!({"ms": 500}))).await;
    server.slow_call_started().await;
    server.shutdown.cancel();

    // While draining: no new messages, no new streams.
    let response = connection
        .post_json(&call(2, "echo", json!({"text": "too late"})))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    // The running call finishes and its reply is delivered, then the stream ends cleanly.
    let reply = reply_to(&mut connection, 1).await;
    assert_eq!(first_text(&reply), "done");
    assert!(ends_cleanly(&mut connection, Duration::from_secs(10)).await);
    assert_eq!(Probe::get(&server.probe.slow_finished), 1);
    assert_eq!(server.sse.open_streams(), 0);
}

#[tokio::test]
async fn shutdown_closes_streams_after_the_drain_time() {
    let server = TestServer::start(Config {
        shutdown_drain: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut idle = server.open_initialized("bob").await;
    let mut busy = server.open_initialized("alice").await;
    send(&busy, call(1, "slow", json!({}))).await;
    server.slow_call_started().await;
    server.shutdown.cancel();
    assert!(ends_cleanly(&mut idle, Duration::from_secs(5)).await);
    assert!(ends_cleanly(&mut busy, Duration::from_secs(5)).await);
    server
        .slow_call_dropped("the unfinished call is dropped")
        .await;
    assert_eq!(server.sse.open_streams(), 0);
}

#[tokio::test]
async fn a_new_stream_during_shutdown_is_refused() {
    let server = TestServer::default().await;
    let _open = server.open("alice").await;
    server.shutdown.cancel();
    let response = server
        .http
        .get(server.url("/sse"))
        .header("x-user", "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn one_stream_too_many_for_an_identity_closes_its_oldest() {
    let server = TestServer::start(Config {
        max_streams_per_identity: 2,
        ..Config::default()
    })
    .await;
    let mut first = server.open_initialized("alice").await;
    let mut second = server.open_initialized("alice").await;
    let mut bobs = server.open_initialized("bob").await;
    let mut third = server.open_initialized("alice").await;

    assert!(ends_cleanly(&mut first, Duration::from_secs(5)).await);
    assert_eq!(server.sse.open_streams(), 3);
    for (connection, id) in [(&mut second, 1), (&mut third, 2), (&mut bobs, 3)] {
        send(connection, call(id, "echo", json!({"text": "alive"}))).await;
        assert_eq!(first_text(&reply_to(connection, id).await), "alive");
    }
}

#[tokio::test]
async fn the_stream_limit_refuses_with_503() {
    let server = TestServer::start(Config {
        max_sessions: 2,
        ..Config::default()
    })
    .await;
    let _a = server.open("alice").await;
    let _b = server.open("bob").await;
    let response = server
        .http
        .get(server.url("/sse"))
        .header("x-user", "carol")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    drop(_a);
    eventually("a place frees up", Duration::from_secs(5), || {
        server.sse.open_streams() == 1
    })
    .await;
    let _c = server.open("carol").await;
}
