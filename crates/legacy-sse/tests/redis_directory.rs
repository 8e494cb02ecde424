//! Two replicas sharing one Redis (`RedisDirectory`): a stream held by A, POSTs landing on
//! B. Each test starts its own Redis on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Tag, TestServer, call, reply_to};
use legacy_sse::client::Connection;
use legacy_sse::{
    Config, DeliveryError, RebuildParts, RedisDirectory, RedisDirectoryConfig, SessionDirectory,
};
use serde_json::{Value, json};
use test_support::redis::RedisServer;

/// The test's authentication stand-in: marks forwarded requests, and refuses the user
/// `revoked` as an authenticator would refuse a revoked credential.
struct MarkRebuilt;

/// A header's text, or `-` when absent.
fn header(parts: &http::request::Parts, name: &str) -> String {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

#[async_trait::async_trait]
impl RebuildParts for MarkRebuilt {
    async fn rebuild(
        &self,
        mut parts: http::request::Parts,
    ) -> Result<http::request::Parts, DeliveryError> {
        let user = header(&parts, "x-user");
        if user == "revoked" {
            return Err(DeliveryError::NotFound);
        }
        let request_id = header(&parts, "x-request-id");
        parts
            .extensions
            .insert(Tag(format!("rebuilt for {user}, request {request_id}")));
        Ok(parts)
    }
}

fn directory_config() -> RedisDirectoryConfig {
    RedisDirectoryConfig {
        key_prefix: "test-sse".to_owned(),
        redis_timeout: Duration::from_millis(500),
        ping_interval: Duration::from_millis(500),
        forward_headers: vec![
            http::HeaderName::from_static("x-user"),
            http::HeaderName::from_static("x-request-id"),
        ],
        ..RedisDirectoryConfig::default()
    }
}

async fn directory(redis: &RedisServer) -> Arc<RedisDirectory> {
    let directory =
        RedisDirectory::start(&redis.url(), directory_config(), Arc::new(MarkRebuilt)).unwrap();
    assert!(directory.wait_subscribed(Duration::from_secs(5)).await);
    Arc::new(directory)
}

/// A replica: a server whose sessions are found through a `RedisDirectory`.
struct Replica {
    server: TestServer,
    directory: Arc<RedisDirectory>,
}

async fn replica(redis: &RedisServer) -> Replica {
    let directory = directory(redis).await;
    let server = TestServer::start_with_directory(Config::default(), directory.clone()).await;
    Replica { server, directory }
}

/// Redis and two replicas on it, with alice's stream open on A and initialized through B.
async fn alice_on_a_initialized_via_b() -> (RedisServer, Replica, Replica, Connection) {
    let redis = RedisServer::start();
    let a = replica(&redis).await;
    let b = replica(&redis).await;
    let mut stream = a.server.open("alice").await;
    initialize_via(&b.server, &mut stream, "alice").await;
    (redis, a, b, stream)
}

/// An echo call from alice POSTed to `replica` is accepted and answered on her stream.
async fn echo_as_alice(replica: &TestServer, stream: &mut Connection, id: i64, text: &str) {
    accepted(
        replica,
        stream,
        "alice",
        call(id, "echo", json!({ "text": text })),
    )
    .await;
    assert_eq!(text_of(&reply_to(stream, id).await), text);
}

/// POSTs `body` as `user` to `replica`'s copy of the stream's endpoint (same path and
/// `sessionId`, that replica's origin), with a request id.
async fn post_via(
    replica: &TestServer,
    connection: &Connection,
    user: &str,
    body: &Value,
) -> reqwest::Response {
    let endpoint = &connection.endpoint;
    let mut url = replica.url(endpoint.path());
    url.set_query(endpoint.query());
    replica
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-user", user)
        .header("x-request-id", "req-7")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn accepted(replica: &TestServer, connection: &Connection, user: &str, body: Value) {
    let response = post_via(replica, connection, user, &body).await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 202, "POST {body} via {}: {text}", replica.base);
}

async fn initialize_via(replica: &TestServer, connection: &mut Connection, user: &str) {
    accepted(
        replica,
        connection,
        user,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {},
            "clientInfo": {"name": "legacy-sse-tests", "version": "0"}}}),
    )
    .await;
    let reply = reply_to(connection, 0).await;
    assert_eq!(reply["result"]["protocolVersion"], "2024-11-05");
    accepted(
        replica,
        connection,
        user,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
}

fn text_of(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"].as_str().unwrap_or("")
}

async fn status_via(replica: &TestServer, connection: &Connection, user: &str, id: i64) -> u16 {
    post_via(
        replica,
        connection,
        user,
        &call(id, "echo", json!({"text": "hi"})),
    )
    .await
    .status()
    .as_u16()
}

/// [`status_via`], which must answer within 2 s (a dead holder or Redis fails fast).
async fn prompt_status_via(replica: &TestServer, connection: &Connection, user: &str) -> u16 {
    let started = Instant::now();
    let status = status_via(replica, connection, user, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{status} took {:?}",
        started.elapsed()
    );
    status
}

#[tokio::test]
async fn a_post_on_another_replica_reaches_the_stream_with_rebuilt_parts() {
    let (_redis, a, b, mut stream) = alice_on_a_initialized_via_b().await;
    accepted(&b.server, &stream, "alice", call(1, "whoami", json!({}))).await;
    let reply = reply_to(&mut stream, 1).await;
    assert_eq!(text_of(&reply), "alice POST /messages", "{reply}");
    // The holder rebuilt the request's parts with the hook, from the forwarded headers.
    accepted(&b.server, &stream, "alice", call(2, "tag", json!({}))).await;
    let reply = reply_to(&mut stream, 2).await;
    assert_eq!(
        text_of(&reply),
        "rebuilt for alice, request req-7",
        "{reply}"
    );
    // A POST on the holder itself is pushed directly, with its own parts.
    accepted(&a.server, &stream, "alice", call(3, "tag", json!({}))).await;
    assert_eq!(text_of(&reply_to(&mut stream, 3).await), "none");
    assert_eq!(a.directory.local_sessions(), 1);
    assert_eq!(b.directory.local_sessions(), 0);
}

#[tokio::test]
async fn another_identity_or_an_unknown_session_is_404_on_another_replica() {
    let (_redis, a, b, mut stream) = alice_on_a_initialized_via_b().await;

    assert_eq!(status_via(&b.server, &stream, "bob", 1).await, 404);
    assert_eq!(status_via(&a.server, &stream, "bob", 2).await, 404);
    // The holder's authentication refuses the forwarded credential: the same 404.
    assert_eq!(status_via(&b.server, &stream, "revoked", 3).await, 404);
    let unknown = b
        .server
        .post(
            Some("alice"),
            "?sessionId=0123456789abcdef0123456789abcdef",
            &call(4, "echo", json!({})).to_string(),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    // Alice's own POSTs still go through.
    echo_as_alice(&b.server, &mut stream, 5, "still").await;
}

#[tokio::test]
async fn a_closed_stream_is_404_on_other_replicas_and_leaves_no_record() {
    let (redis, a, b, stream) = alice_on_a_initialized_via_b().await;
    let mut inspect = redis.inspect().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("test-sse:session:*")
        .query_async(&mut inspect)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");

    let query = stream.endpoint.query().unwrap().to_owned();
    drop(stream);
    common::eventually("the holder unregisters", Duration::from_secs(5), || {
        a.directory.local_sessions() == 0
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("test-sse:session:*")
            .query_async(&mut inspect)
            .await
            .unwrap();
        if keys.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "record left behind: {keys:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let response = b
        .server
        .post(
            Some("alice"),
            &format!("?{query}"),
            &call(1, "echo", json!({})).to_string(),
        )
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_holder_that_crashed_without_unregistering_is_404_at_once() {
    let redis = RedisServer::start();
    let b = replica(&redis).await;
    // Replica A in a runtime of its own, so it can die with all its tasks and connections
    // and without running any cleanup that needs the runtime.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
    let redis_url = redis.url();
    let holder = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let base = runtime.block_on(async {
            let directory =
                RedisDirectory::start(&redis_url, directory_config(), Arc::new(MarkRebuilt))
                    .unwrap();
            assert!(directory.wait_subscribed(Duration::from_secs(5)).await);
            let server =
                TestServer::start_with_directory(Config::default(), Arc::new(directory)).await;
            let base = server.base.clone();
            // The server lives in the runtime until it is dropped.
            std::mem::forget(server);
            base
        });
        ready_tx.send(base).unwrap();
        crash_rx.recv().unwrap();
        runtime.shutdown_background();
    });
    let a_base = ready_rx.await.unwrap();
    let http = reqwest::Client::new();
    let mut stream = legacy_sse::client::open(
        &http,
        &a_base.join("/sse").unwrap(),
        common::user_headers("alice"),
    )
    .await
    .unwrap();
    initialize_via(&b.server, &mut stream, "alice").await;

    crash_tx.send(()).unwrap();
    holder.join().unwrap();
    // The record is still in Redis (its TTL is a minute), but nobody listens on A's channel.
    assert_eq!(prompt_status_via(&b.server, &stream, "alice").await, 404);
}

#[tokio::test]
async fn redis_down_is_503_quickly_and_both_replicas_recover_alone() {
    let mut redis = RedisServer::start();
    let a = replica(&redis).await;
    let b = replica(&redis).await;
    let mut stream = a.server.open("alice").await;
    initialize_via(&b.server, &mut stream, "alice").await;

    redis.kill();
    assert_eq!(prompt_status_via(&b.server, &stream, "alice").await, 503);
    // The holder still takes POSTs that land on it.
    echo_as_alice(&a.server, &mut stream, 2, "local").await;
    // A new stream cannot be made reachable: refused with 503 rather than half-working.
    let refused = legacy_sse::client::open(
        &a.server.http,
        &a.server.url("/sse"),
        common::user_headers("alice"),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(legacy_sse::client::ClientError::Status { status: 503, .. })
        ),
        "{:?}",
        refused.err()
    );

    // Redis comes back empty on the same port; nothing is restarted on A or B.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut id = 10;
    loop {
        id += 1;
        let status = status_via(&b.server, &stream, "alice", id).await;
        if status == 202 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text_of(&reply_to(&mut stream, id).await), "hi");
    assert!(a.directory.is_subscribed() && b.directory.is_subscribed());
}

#[tokio::test]
async fn on_shutdown_the_holder_answers_promptly_and_close_forgets_its_sessions() {
    let (_redis, a, b, mut stream) = alice_on_a_initialized_via_b().await;

    a.server.shutdown.cancel();
    let started = Instant::now();
    let status = status_via(&b.server, &stream, "alice", 1).await;
    assert!(matches!(status, 503 | 404), "{status}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(common::ends_cleanly(&mut stream, Duration::from_secs(10)).await);
    a.directory.close().await;
    assert_eq!(a.directory.local_sessions(), 0);
    assert_eq!(status_via(&b.server, &stream, "alice", 2).await, 404);
}

#[tokio::test]
async fn the_directory_alone_answers_unknown_sessions_and_a_bad_url_is_refused() {
    let redis = RedisServer::start();
    let directory = directory(&redis).await;
    let (parts, ()) = http::Request::new(()).into_parts();
    let delivery = legacy_sse::Delivery {
        parts,
        messages: Vec::new(),
    };
    let unknown = legacy_sse::SessionId::random();
    let result = directory
        .deliver(&unknown, &legacy_sse::IdentityKey::new("alice"), delivery)
        .await;
    assert_eq!(result, Err(DeliveryError::NotFound));
    let bad = RedisDirectory::start(
        "http://user:hunter2@example.com",
        RedisDirectoryConfig::default(),
        Arc::new(legacy_sse::HeadersOnly),
    );
    let error = bad.err().expect("refused").to_string();
    assert!(!error.contains("hunter2"), "{error}");
}

/// Pings keep the subscription up, they do not break it: a subscription that dropped at
/// every ping would make POSTs landing on other replicas meanwhile answer 404 (the client
/// would then lose its session).
#[tokio::test]
async fn the_subscription_stays_up_across_pings() {
    let (_redis, a, b, mut stream) = alice_on_a_initialized_via_b().await;
    // Six ping intervals, sampled every 10 ms.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!(a.directory.is_subscribed(), "the subscription dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut id = 100;
    for _ in 0..20 {
        id += 1;
        assert_eq!(status_via(&b.server, &stream, "alice", id).await, 202);
        assert_eq!(text_of(&reply_to(&mut stream, id).await), "hi");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
