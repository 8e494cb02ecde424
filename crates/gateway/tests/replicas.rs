//! Several replicas sharing one Redis: two in-process gateways in front of one
//! simulator, with a real Redis server started by the test. A client moves between them
//! with the same `Mcp-Session-Id`, as behind a round-robin load balancer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Env, Raw};
use futures::StreamExt;
use gateway::{Config, RunningGateway};
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::redis::RedisServer;
use test_support::sim::SimAdmin;
use test_support::sse::SseReader;

/// Applies the shared Redis to a gateway's configuration.
fn shared(url: &str) -> impl Fn(&mut Config) + Clone + use<> {
    let url = url.to_owned();
    move |config: &mut Config| {
        config.redis_url = Some(url.parse().unwrap());
        config.upstream_request_timeout = Duration::from_secs(5);
    }
}

/// Another replica in front of the same simulator.
async fn replica(env: &Env, adjust: impl Fn(&mut Config)) -> RunningGateway {
    let uploads = env.sim.local_addr().to_string();
    env.replica(|config| {
        config.upload_allow_hosts = vec![uploads];
        adjust(config);
    })
    .await
}

/// Two replicas A (`env.gateway`) and B sharing `redis`.
async fn two_replicas(redis: &RedisServer) -> (Env, RunningGateway) {
    let adjust = shared(&redis.url());
    let env = Env::start_with(adjust.clone()).await;
    let b = replica(&env, adjust).await;
    (env, b)
}

fn on(client: &mut Raw, gateway: &RunningGateway) {
    client.url = gateway.mcp_url();
}

/// The client's session is unknown (404) on replica B and on replica A (`a_url`); the client
/// is left pointing at A.
async fn assert_unknown_on_both(client: &mut Raw, b: &RunningGateway, a_url: String) {
    on(client, b);
    let answer = client.list_tools().await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
    client.url = a_url;
    let answer = client.list_tools().await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{answer:?}");
}

fn tool_count(answer: &common::Answer) -> usize {
    answer.result()["tools"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_session_opened_on_one_replica_goes_on_on_another() {
    let redis = RedisServer::start();
    let (env, b) = two_replicas(&redis).await;
    let a_url = env.mcp_url();

    let mut client = env.session(&env.alice).await;

    // B never saw the session: it restores it from Redis, no re-initialize.
    let tools = common::move_session(&mut client, b.mcp_url()).await;
    assert_eq!(tool_count(&tools), 18);

    // And back on A.
    client.url = a_url.clone();
    client.ok("list_workspaces", json!({})).await;

    // DELETE on B ends it for A as well.
    on(&mut client, &b);
    let deleted = client
        .request(reqwest::Method::DELETE)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_unknown_on_both(&mut client, &b, a_url).await;

    b.shutdown().await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_session_stays_its_users_on_every_replica() {
    let redis = RedisServer::start();
    let (env, b) = two_replicas(&redis).await;

    let alice = env.session(&env.alice).await;
    let mut bob = env.client(&env.bob);
    bob.session = alice.session.clone();
    // Another user gets the 404 of an unknown session, on the replica that opened it and on
    // the one that did not.
    assert_unknown_on_both(&mut bob, &b, env.mcp_url()).await;
    // Bob's attempts did not end Alice's session.
    let mut alice = alice;
    on(&mut alice, &b);
    assert_eq!(alice.list_tools().await.status, StatusCode::OK);

    b.shutdown().await;
    env.shutdown().await;
}

#[tokio::test]
async fn the_per_user_cap_holds_across_replicas() {
    let redis = RedisServer::start();
    let adjust = shared(&redis.url());
    let cap = {
        let adjust = adjust.clone();
        move |c: &mut Config| {
            adjust(c);
            c.max_sessions_per_user = 2;
        }
    };
    let env = Env::start_with(cap.clone()).await;
    let b = replica(&env, cap).await;

    let mut first = env.session(&env.alice).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut second = env.client(&env.alice);
    on(&mut second, &b);
    second.initialize().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut third = env.client(&env.alice);
    third.initialize().await;
    // The least recently used (the first, opened on A) is gone everywhere.
    assert_unknown_on_both(&mut first, &b, env.mcp_url()).await;
    assert_eq!(second.list_tools().await.status, StatusCode::OK);
    on(&mut third, &b);
    assert_eq!(third.list_tools().await.status, StatusCode::OK);

    b.shutdown().await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_pat_accepted_through_one_replica_is_not_checked_again_through_another() {
    let redis = RedisServer::start();
    let (env, b) = two_replicas(&redis).await;

    // Initialize on A: Layer checks the PAT once.
    let mut client = env.session(&env.alice).await;
    let before = env.api_requests().await;
    // B trusts the shared cache: tools/list there asks Layer nothing.
    on(&mut client, &b);
    assert_eq!(client.list_tools().await.status, StatusCode::OK);
    let mut fresh = env.client(&env.alice);
    on(&mut fresh, &b);
    fresh.initialize().await;
    assert_eq!(
        env.api_requests().await,
        before,
        "replica B asked Layer about a PAT replica A had accepted"
    );

    // A revoked or unknown PAT is refused on both.
    for gateway_url in [env.mcp_url(), b.mcp_url()] {
        for pat in [
            env.alice_revoked.as_str(),
            "layer_pat_sim_nobody_0000000000",
        ] {
            let mut stranger = env.client(pat);
            stranger.url = gateway_url.clone();
            let answer = stranger.send_initialize().await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
        }
    }
    // The cache holds hashes, never a token.
    let keys = redis_keys(&redis).await;
    assert!(keys.iter().any(|k| k.contains(":credential:")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(&env.alice)), "{keys:?}");

    b.shutdown().await;
    env.shutdown().await;
}

async fn redis_keys(redis: &RedisServer) -> Vec<String> {
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    ::redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// The 503 a session request gets while the session store is away.
fn assert_store_unavailable(answer: &common::Answer) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "expected 503, got {answer:?}"
    );
    let message = answer.error()["message"].as_str().unwrap();
    assert!(
        message.contains("session store is unavailable"),
        "{message}"
    );
    assert!(message.contains("retry"), "{message}");
    assert_eq!(answer.error()["code"], json!(-32003));
}

#[tokio::test]
async fn losing_redis_refuses_session_requests_clearly_and_recovers() {
    let mut redis = RedisServer::start();
    let (env, b) = two_replicas(&redis).await;
    // One session used on both replicas; one only ever seen by A.
    let mut both = env.session(&env.alice).await;
    on(&mut both, &b);
    assert_eq!(both.list_tools().await.status, StatusCode::OK);
    let mut only_a = env.session(&env.alice).await;

    // Redis hangs (a network partition). A replica that checked a session before goes on
    // with the same owner check; one that never saw it cannot check it: 503, not 404.
    redis.pause();
    assert_eq!(both.list_tools().await.status, StatusCode::OK);
    let mut stranger = env.client(&env.bob);
    stranger.session = both.session.clone();
    on(&mut stranger, &b);
    assert_eq!(stranger.list_tools().await.status, StatusCode::NOT_FOUND);
    on(&mut only_a, &b);
    assert_store_unavailable(&only_a.list_tools().await);
    only_a.url = env.mcp_url();
    assert_eq!(only_a.list_tools().await.status, StatusCode::OK);
    let ready = env
        .http
        .get(env.mcp_url().replace("/mcp", "/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body = ready.text().await.unwrap();
    assert!(
        body.contains("session store (redis): unreachable"),
        "{body}"
    );

    // Back, with its data: the session A alone knew now works on B too.
    redis.resume();
    on(&mut only_a, &b);
    let mut answer = only_a.list_tools().await;
    for _ in 0..20 {
        if answer.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = only_a.list_tools().await;
    }
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");

    // Killed: a session B never checked is 503 there. Restarted empty on the same port:
    // each replica writes back the sessions it knows, so they go on where they are known;
    // a replica that must restore one from the lost state answers 404, and the client
    // re-initializes.
    let mut late = env.session(&env.alice).await;
    redis.kill();
    on(&mut late, &b);
    assert_store_unavailable(&late.list_tools().await);
    redis.start_again();
    both.url = env.mcp_url();
    let mut answer = both.list_tools().await;
    for _ in 0..20 {
        if answer.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = both.list_tools().await;
    }
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    on(&mut both, &b);
    both.ok("list_workspaces", json!({})).await;
    // Another user still cannot use it.
    assert_eq!(stranger.list_tools().await.status, StatusCode::NOT_FOUND);
    // `late` was only ever on A, whose stored state is gone: B cannot restore it.
    assert_eq!(late.list_tools().await.status, StatusCode::NOT_FOUND);
    late.session = None;
    late.initialize().await;
    late.url = env.mcp_url();
    late.ok("list_workspaces", json!({})).await;
    let ready = env
        .http
        .get(env.mcp_url().replace("/mcp", "/readyz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ready.contains("session store (redis): ok"), "{ready}");

    drop(redis);
    b.shutdown().await;
    env.shutdown().await;
}

/// The SSE events of a raw response body, as (id, data) pairs, until the stream ends or
/// `wanted` events arrived.
async fn sse_events(response: reqwest::Response, wanted: usize) -> Vec<(Option<String>, String)> {
    let mut reader = SseReader::new(response);
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < wanted {
        match tokio::time::timeout_at(deadline, reader.next()).await {
            Ok(Some(event)) if event.id.is_some() || event.data.is_some() => events.push((
                event.id.map(|id| id.trim().to_owned()),
                event.data.unwrap_or_default(),
            )),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    events
}

#[tokio::test]
async fn a_broken_stream_resumes_on_another_replica_with_last_event_id() {
    let redis = RedisServer::start();
    let (env, b) = two_replicas(&redis).await;
    let client = env.session(&env.alice).await;

    // A tool call on A, answered on an SSE stream whose events carry ids from the shared
    // event store: a priming event first, then the result.
    let response = client
        .request(reqwest::Method::POST)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call",
            "params": {"name": "list_workspaces", "arguments": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = sse_events(response, 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let priming = events[0].0.clone().expect("the priming event has an id");
    let result: Value = serde_json::from_str(&events[1].1).unwrap();
    assert_eq!(result["id"], json!(41));

    // Say the connection broke after the priming event: the client resumes on B, which
    // never saw the session, and gets what it missed, with the same event id.
    let resume = |bearer: &str| {
        client
            .http
            .get(b.mcp_url())
            .bearer_auth(bearer)
            .header("mcp-session-id", client.session.clone().unwrap())
            .header("mcp-protocol-version", "2025-11-25")
            .header("accept", "text/event-stream")
            .header("last-event-id", &priming)
            .send()
    };
    let resumed = resume(&env.alice).await.unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    let replayed = sse_events(resumed, 1).await;
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(replayed[0].0, events[1].0);
    let replayed_result: Value = serde_json::from_str(&replayed[0].1).unwrap();
    assert_eq!(replayed_result, result);

    // Another user cannot read it: their bearer does not own the session.
    let stranger = resume(&env.bob).await.unwrap();
    assert_eq!(stranger.status(), StatusCode::NOT_FOUND);

    b.shutdown().await;
    env.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_calls_in_flight_and_closes_streams() {
    let redis = RedisServer::start();
    let adjust = shared(&redis.url());
    let env = Env::start_with(move |c| {
        adjust(c);
        c.shutdown_drain = Duration::from_secs(5);
    })
    .await;
    let client = env.session(&env.alice).await;
    let addr = env.gateway.addr;

    // A standalone GET stream, open.
    let standalone = client
        .request(reqwest::Method::GET)
        .header("mcp-protocol-version", "2025-11-25")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(standalone.status(), StatusCode::OK);

    // A slow tool call in flight (Layer answers after 1.5 s).
    env.add_fault(
        json!({"kind": "latency", "path_prefix": "/api/v1/workspaces", "latency_ms": 1500}),
    )
    .await;
    let mut caller = Raw {
        http: reqwest::Client::new(),
        url: client.url.clone(),
        pat: client.pat.clone(),
        session: client.session.clone(),
        version: client.version.clone(),
        next_id: 100,
    };
    let call = tokio::spawn(async move { caller.call("list_workspaces", json!({})).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    let token = env.gateway.shutdown_token();
    token.cancel();
    // The standalone stream ends at once (the client reconnects elsewhere).
    let body = tokio::time::timeout(Duration::from_secs(2), standalone.text()).await;
    assert!(
        body.is_ok(),
        "the standalone stream stayed open during the drain"
    );
    // New connections are refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // The call in flight completes.
    let answer = call.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(!answer.is_tool_error(), "{}", answer.result());
    // And the gateway stops well within the drain time.
    let Env { gateway, sim, .. } = env;
    tokio::time::timeout(Duration::from_secs(5), gateway.wait())
        .await
        .expect("stopped within the drain time")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    sim.shutdown().await;
}

/// The binary itself: SIGTERM with a slow call in flight. The call completes, new
/// connections are refused, and the process exits 0 within the drain time.
#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let redis = RedisServer::start();
    let sim = layer_sim::start(layer_sim::SimConfig {
        enable_admin: true,
        ..layer_sim::SimConfig::for_tests()
    })
    .await
    .unwrap();
    let common::Served {
        mut child,
        port,
        logs,
    } = common::serve(
        &sim,
        &["--redis-url", &redis.url()],
        &[("LAYER_MCP_SHUTDOWN_DRAIN_SECS", "6")],
    );
    let mut client = common::served_client(port, &sim, "2025-11-25").await;
    client.initialize().await;
    SimAdmin::new(sim.base_url().as_str())
        .add_faults(
            json!({"kind": "latency", "path_prefix": "/api/v1/workspaces", "latency_ms": 2000}),
        )
        .await;
    let call = tokio::spawn(async move { client.call("list_workspaces", json!({})).await });
    tokio::time::sleep(Duration::from_millis(400)).await;

    let started = std::time::Instant::now();
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "a new connection was accepted while draining"
    );
    let answer = call.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert!(!answer.is_tool_error(), "{}", answer.result());
    let status = tokio::time::timeout(Duration::from_secs(6), child.wait())
        .await
        .expect("exited within the drain time")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    let logs = logs.await.unwrap();
    assert!(logs.contains("drained"), "{logs}");
    sim.shutdown().await;
}

/// The event store on its own: ids name their stream, a replay gives only what followed in
/// that stream, retention is bounded, and losing Redis never loses an event's delivery.
#[tokio::test]
async fn the_event_store_replays_one_stream_after_an_id() {
    use gateway::{EventRetention, RedisEventStore, SharedRedis};
    use rmcp::model::ServerJsonRpcMessage;
    use rmcp::transport::streamable_http_server::session::{EventStore, ServerSseMessage};

    let mut redis = RedisServer::start();
    let shared =
        SharedRedis::connect(&redis.url().parse().unwrap(), Duration::from_secs(1)).unwrap();
    let retention = EventRetention {
        per_stream: 256,
        ttl: Duration::from_secs(60),
    };
    let store = RedisEventStore::new(shared, retention);
    let message = |n: u64| {
        let text = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"info","data":{n}}}}}"#
        );
        ServerSseMessage::from_message(serde_json::from_str::<ServerJsonRpcMessage>(&text).unwrap())
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            store
                .store_event("sess-1:common", &message(n))
                .await
                .unwrap(),
        );
    }
    let other = store.store_event("other", &message(9)).await.unwrap();
    assert!(
        ids.iter().all(|id| id.starts_with("sess-1:common/")),
        "{ids:?}"
    );

    let replayed: Vec<ServerSseMessage> = store
        .replay_events_after(&ids[0])
        .await
        .unwrap()
        .collect()
        .await;
    let replayed_ids: Vec<_> = replayed
        .iter()
        .map(|e| e.event_id.clone().unwrap())
        .collect();
    assert_eq!(replayed_ids, ids[1..].to_vec());
    let data: Vec<Value> = replayed
        .iter()
        .map(|e| {
            serde_json::to_value(e.message.as_deref().unwrap()).unwrap()["params"]["data"].clone()
        })
        .collect();
    assert_eq!(data, vec![json!(1), json!(2)]);
    for last in [&ids[2], &other] {
        let rest: Vec<_> = store
            .replay_events_after(last)
            .await
            .unwrap()
            .collect()
            .await;
        assert!(rest.is_empty());
    }
    assert!(store.replay_events_after("no-separator").await.is_err());

    // Bounded: the stream expires after its TTL.
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg("layer-mcp:events:sess-1:common")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");

    // Redis gone: the event still gets an id (it is delivered), marked unsaved; resuming
    // after it replays nothing rather than failing.
    redis.kill();
    let id = store
        .store_event("sess-1:common", &message(3))
        .await
        .unwrap();
    assert!(id.contains("unsaved-"), "{id}");
    let rest: Vec<_> = store
        .replay_events_after(&id)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(rest.is_empty());
}
