//! The older HTTP+SSE transport across replicas: two in-process gateways sharing one Redis
//! (`redis_url`), a stream opened on A, its POSTs sent to B (same path and `sessionId`,
//! B's origin), as a round-robin balancer would. The test starts its own Redis on a free
//! loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Env, reply_to};
use gateway::RunningGateway;
use legacy_sse::client::{self, Connection};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::redis::RedisServer;
use url::Url;

/// A second gateway in front of `env`'s simulator, sharing `redis`.
async fn replica(env: &Env, redis: &RedisServer) -> RunningGateway {
    env.replica(|config| {
        config.upstream_request_timeout = Duration::from_secs(5);
        config.redis_url = Some(redis.url().parse().unwrap());
    })
    .await
}

/// The stream's endpoint on `gateway`'s origin: what a balancer would route to it.
fn endpoint_on(gateway: &RunningGateway, stream: &Connection) -> Url {
    let mut url = Url::parse(&gateway.mcp_url())
        .unwrap()
        .join(stream.endpoint.path())
        .unwrap();
    url.set_query(stream.endpoint.query());
    url
}

async fn post(
    http: &reqwest::Client,
    url: &Url,
    pat: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = http
        .post(url.clone())
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(pat) = pat {
        request = request.bearer_auth(pat);
    }
    request.send().await.unwrap()
}

/// POSTs `body` and checks the status of the answer.
async fn answered(
    http: &reqwest::Client,
    url: &Url,
    pat: Option<&str>,
    body: Value,
    status: StatusCode,
) -> reqwest::Response {
    let response = post(http, url, pat, &body).await;
    assert_eq!(response.status(), status, "{body}");
    response
}

async fn accepted(http: &reqwest::Client, url: &Url, pat: &str, body: Value) -> reqwest::Response {
    answered(http, url, Some(pat), body, StatusCode::ACCEPTED).await
}

/// A stream on `env`'s gateway with alice's PAT.
async fn open_stream(env: &Env) -> Connection {
    let stream_url = Url::parse(&env.mcp_url()).unwrap().join("/sse").unwrap();
    client::open(&env.http, &stream_url, client::bearer(&env.alice))
        .await
        .expect("a stream")
}

/// The old transport's initialize request, id 0.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "gateway-tests", "version": "1"}}})
}

fn call(id: i64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

#[tokio::test]
async fn posts_to_another_replica_are_answered_on_the_stream_and_stay_the_owners() {
    let redis = RedisServer::start();
    let redis_url = redis.url();
    let env = Env::start_with(|config| config.redis_url = Some(redis_url.parse().unwrap())).await;
    let b = replica(&env, &redis).await;

    let mut stream = open_stream(&env).await;
    assert_eq!(stream.endpoint.port(), Some(env.gateway.addr.port()));
    let on_b = endpoint_on(&b, &stream);
    assert_ne!(on_b.port(), stream.endpoint.port());

    accepted(&env.http, &on_b, &env.alice, initialize()).await;
    assert_eq!(
        reply_to(&mut stream, 0).await["result"]["protocolVersion"],
        "2024-11-05"
    );
    accepted(
        &env.http,
        &on_b,
        &env.alice,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;

    accepted(
        &env.http,
        &on_b,
        &env.alice,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}),
    )
    .await;
    let tools = reply_to(&mut stream, 1).await;
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 18);

    // The call runs on A with alice's own credential (authenticated again on A).
    accepted(
        &env.http,
        &on_b,
        &env.alice,
        call(2, "list_workspaces", json!({})),
    )
    .await;
    let listed = reply_to(&mut stream, 2).await;
    assert_ne!(listed["result"]["isError"], true, "{listed}");
    let workspaces = &listed["result"]["structuredContent"];
    common::assert_lists_acme(workspaces);

    // A tool error names the request id of the POST that B took.
    let response = accepted(
        &env.http,
        &on_b,
        &env.alice,
        call(3, "get_workspace", json!({"workspace_id": "not-a-uuid"})),
    )
    .await;
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let error = reply_to(&mut stream, 3).await;
    assert_eq!(
        error["result"]["structuredContent"]["code"],
        "INVALID_INPUTS"
    );
    assert_eq!(
        error["result"]["structuredContent"]["request_id"],
        request_id
    );

    // Another user's POST to B: the same 404 as an unknown session; none at all: 401.
    answered(
        &env.http,
        &on_b,
        Some(&env.bob),
        call(4, "list_workspaces", json!({})),
        StatusCode::NOT_FOUND,
    )
    .await;
    answered(
        &env.http,
        &on_b,
        None,
        call(5, "list_workspaces", json!({})),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // The stream closes: B answers 404 (the client opens a new stream).
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = post(
            &env.http,
            &on_b,
            Some(&env.alice),
            &call(6, "list_workspaces", json!({})),
        )
        .await
        .status();
        if status == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the stream closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.shutdown().await;
    env.shutdown().await;
}

#[tokio::test]
async fn without_redis_url_a_post_to_another_gateway_is_404() {
    let env = Env::start().await;
    let other = Env::start().await;
    let stream = open_stream(&env).await;
    let on_other = endpoint_on(&other.gateway, &stream);
    answered(
        &env.http,
        &on_other,
        Some(&other.alice),
        call(1, "list_workspaces", json!({})),
        StatusCode::NOT_FOUND,
    )
    .await;
    other.shutdown().await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_replica_shutting_down_closes_its_streams_and_other_replicas_answer_404() {
    let redis = RedisServer::start();
    let redis_url = redis.url();
    let env = Env::start_with(|config| {
        config.redis_url = Some(redis_url.parse().unwrap());
        config.shutdown_drain = Duration::from_secs(1);
    })
    .await;
    let b = replica(&env, &redis).await;
    let mut stream = open_stream(&env).await;
    let on_b = endpoint_on(&b, &stream);
    accepted(&env.http, &on_b, &env.alice, initialize()).await;
    reply_to(&mut stream, 0).await;

    let Env {
        sim,
        gateway,
        http,
        alice,
        ..
    } = env;
    let stopping = tokio::spawn(gateway.shutdown());
    // The stream ends (the client reconnects, through the balancer, to another replica).
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(_)) = stream.events.next_frame().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream did not end");
    stopping.await.unwrap();
    let started = Instant::now();
    let status = post(
        &http,
        &on_b,
        Some(&alice),
        &call(1, "list_workspaces", json!({})),
    )
    .await
    .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    b.shutdown().await;
    sim.shutdown().await;
}
