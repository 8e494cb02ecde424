//! The per-user caps through one in-process gateway (in-process limiter) in front of the
//! simulator, over real loopback HTTP: what frees a place and what keeps it, how refusals
//! read, and the queue of calls in flight. The simulator's own 5-run limit is raised (unless
//! a test is about it), so only the gateway's cap can keep Layer from seeing a 6th run.
//! Several gateways sharing Redis, SIGKILL and Redis outages are in `tests/tests/caps.rs`.
// The OAuth test starts the authorization server `demo` uses, against the simulator.
#![cfg(feature = "demo")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{ACME, CHARACTER_TURNAROUND, Env, FLUX_2_PRO};
use layer_sim::SimConfig;
use serde_json::{Value, json};

fn sim(max_concurrent_runs: usize) -> SimConfig {
    SimConfig {
        max_concurrent_runs,
        ..SimConfig::for_tests()
    }
}

fn held_forge() -> Value {
    json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "prompt": "a fox SIM_HOLD", "batch_size": 1})
}

fn held_workflow() -> Value {
    json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND,
           "inputs": {"character_prompt": "a knight SIM_HOLD"}})
}

fn ids(runs: &Value) -> BTreeSet<String> {
    runs.as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn finish(env: &Env, run: &str) {
    env.admin().finish_run(run).await;
}

async fn max_unfinished(env: &Env, login: &str) -> u64 {
    env.admin().max_unfinished_runs(login, ACME).await
}

#[tokio::test]
async fn the_sixth_execute_is_refused_naming_the_five_runs_until_a_poll_sees_one_finish() {
    let env = Env::start_with_sim(sim(50), |_| {}).await;
    let mut client = env.session(&env.alice.clone()).await;
    let mut started = BTreeSet::new();
    for _ in 0..5 {
        let run = client.ok("execute_forge", held_forge()).await;
        started.insert(run["inference_id"].as_str().unwrap().to_owned());
    }
    let runs = env.runs_created().await;
    let refused = client.fails("execute_forge", held_forge()).await;
    assert_eq!(refused["code"], "RATE_LIMITED");
    assert_eq!(refused["status"], 429);
    assert_eq!(ids(&refused["active_runs"]), started);
    let first = refused["active_runs"][0].clone();
    assert_eq!(first["kind"], "forge");
    assert_eq!(first["poll_with"], "get_forge_run");
    let message = refused["message"].as_str().unwrap();
    for run in &started {
        assert!(message.contains(run.as_str()), "{message}");
    }
    assert!(
        message.contains("get_forge_run") && message.contains("retry after"),
        "{message}"
    );
    // Layer said the runs are running: retry when it suggests polling again.
    assert!(refused["retry_after_seconds"].as_u64().unwrap() >= 1);
    assert_eq!(env.runs_created().await, runs, "nothing reached Layer");

    // A poll that sees a run still running keeps its place; one that sees it over frees it.
    let one = started.iter().next().unwrap().clone();
    let polled = client
        .ok(
            "get_forge_run",
            json!({"workspace_id": ACME, "inference_id": one}),
        )
        .await;
    assert_eq!(polled["status"], "in_progress");
    assert_eq!(
        client.fails("execute_forge", held_forge()).await["code"],
        "RATE_LIMITED"
    );
    finish(&env, &one).await;
    let polled = client
        .ok(
            "get_forge_run",
            json!({"workspace_id": ACME, "inference_id": one}),
        )
        .await;
    assert_eq!(polled["status"], "complete");
    let sixth = client.ok("execute_forge", held_forge()).await;
    assert!(!started.contains(sixth["inference_id"].as_str().unwrap()));
    assert_eq!(max_unfinished(&env, "alice").await, 5);
    env.shutdown().await;
}

#[tokio::test]
async fn a_refused_execute_frees_its_place_and_an_unknown_outcome_keeps_it() {
    let env = Env::start_with_sim(sim(50), |c| {
        c.caps.max_active_runs = 1;
        c.upstream_max_attempts = 1;
    })
    .await;
    let mut client = env.session(&env.alice.clone()).await;
    // Layer refuses (unknown model, 404): nothing started, the place is free again.
    let mut missing = held_forge();
    missing["model_id"] = json!(common::MISSING);
    assert_eq!(
        client.fails("execute_forge", missing.clone()).await["code"],
        "MODEL_NOT_FOUND"
    );
    assert_eq!(
        client.fails("execute_forge", missing).await["code"],
        "MODEL_NOT_FOUND"
    );
    // The connection drops after Layer started the run: the outcome is unknown, the run
    // exists, and its place is kept.
    env.add_fault(json!({"kind": "drop", "when": "after", "method": "POST",
                         "path_prefix": "/api/v1/workspaces/", "count": 1}))
        .await;
    let lost = client.fails("execute_forge", held_forge()).await;
    assert_eq!(lost["code"], "UPSTREAM_UNAVAILABLE", "{lost}");
    assert_eq!(env.runs_created().await, 1, "the run exists upstream");
    let refused = client.fails("execute_forge", held_forge()).await;
    assert_eq!(refused["code"], "RATE_LIMITED");
    assert_eq!(refused["active_runs"], json!([]), "its id is unknown");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("outcome is unknown"), "{message}");
    assert_eq!(env.runs_created().await, 1);
    assert_eq!(max_unfinished(&env, "alice").await, 1);
    env.shutdown().await;
}

#[tokio::test]
async fn layers_own_429_is_rate_limited_naming_the_runs_the_gateway_counts() {
    // Layer allows 2; the gateway would allow 5.
    let env = Env::start_with_sim(sim(2), |_| {}).await;
    let mut client = env.session(&env.alice.clone()).await;
    let mut started = BTreeSet::new();
    for _ in 0..2 {
        let run = client.ok("execute_forge", held_forge()).await;
        started.insert(run["inference_id"].as_str().unwrap().to_owned());
    }
    let refused = client.fails("execute_forge", held_forge()).await;
    assert_eq!(refused["code"], "RATE_LIMITED");
    assert!(refused["retry_after_seconds"].as_u64().unwrap() >= 1);
    assert_eq!(ids(&refused["active_runs"]), started);
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains(started.iter().next().unwrap().as_str())
    );
    // (The client retried Layer's 429 with the same key before giving up.)
    assert!(
        env.sim_state().await["counters"]["rate_limited"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(env.runs_created().await, 2);
    // Layer's refusal started nothing: the gateway did not keep a place for it.
    let runs = env.sim_state().await["runs"].as_array().unwrap().clone();
    let first = runs[0]["id"].as_str().unwrap().to_owned();
    finish(&env, &first).await;
    client
        .ok(
            "get_forge_run",
            json!({"workspace_id": ACME, "inference_id": first}),
        )
        .await;
    client.ok("execute_forge", held_forge()).await;
    env.shutdown().await;
}

#[tokio::test]
async fn workflow_runs_hold_places_named_with_their_workflow_and_a_cancel_frees_one() {
    let env = Env::start_with_sim(sim(50), |c| c.caps.max_active_runs = 2).await;
    let mut client = env.session(&env.alice.clone()).await;
    let workflow_run = client.ok("execute_workflow", held_workflow()).await;
    let run_id = workflow_run["run_id"].as_str().unwrap().to_owned();
    client.ok("execute_forge", held_forge()).await;
    let refused = client.fails("execute_workflow", held_workflow()).await;
    assert_eq!(refused["code"], "RATE_LIMITED");
    let named = refused["active_runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "workflow")
        .cloned()
        .unwrap();
    assert_eq!(named["run_id"], run_id.as_str());
    assert_eq!(named["workflow_id"], CHARACTER_TURNAROUND);
    assert_eq!(named["poll_with"], "get_workflow_run");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains(&format!("workflow {CHARACTER_TURNAROUND}"))
    );
    client
        .ok(
            "cancel_workflow_run",
            json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND, "run_id": run_id}),
        )
        .await;
    client.ok("execute_workflow", held_workflow()).await;
    env.shutdown().await;
}

#[tokio::test]
async fn another_workspace_and_another_user_have_their_own_places() {
    let env = Env::start_with_sim(sim(50), |c| c.caps.max_active_runs = 1).await;
    let mut alice = env.session(&env.alice.clone()).await;
    let mut bob = env.session(&env.bob.clone()).await;
    alice.ok("execute_forge", held_forge()).await;
    assert_eq!(
        alice.fails("execute_forge", held_forge()).await["code"],
        "RATE_LIMITED"
    );
    let mut personal = held_forge();
    personal["workspace_id"] = json!(common::ALICE_PERSONAL);
    alice.ok("execute_forge", personal).await;
    bob.ok("execute_forge", held_forge()).await;
    env.shutdown().await;
}

#[tokio::test]
async fn a_queued_call_the_client_cancels_leaves_the_queue_at_once() {
    let env = Env::start_with(|c| {
        c.caps.max_calls_in_flight = 1;
        c.caps.call_queue_wait = Duration::from_secs(30);
        c.upstream_request_timeout = Duration::from_secs(30);
    })
    .await;
    // Listing models takes 3 s; reading the workspace is instant.
    env.add_fault(
        json!({"kind": "latency", "latency_ms": 3000, "method": "GET",
                         "path_prefix": format!("/api/v1/workspaces/{ACME}/models")}),
    )
    .await;
    let mut slow = env.session(&env.alice.clone()).await;
    let holder = tokio::spawn(async move {
        slow.ok("list_models", json!({"workspace_id": ACME})).await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A second slow call queues, then its client cancels it (notifications/cancelled).
    let mut queued = env.session(&env.alice.clone()).await;
    let id = queued.id();
    let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": "list_models", "arguments": {"workspace_id": ACME}}});
    let mut in_queue = env.client(&env.alice.clone());
    in_queue.session = queued.session.clone();
    let waiting = tokio::spawn(async move { in_queue.post(call).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = queued
        .post(
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": id, "reason": "user pressed stop"}}),
        )
        .await;
    assert_eq!(cancelled.status, reqwest::StatusCode::ACCEPTED);

    // The next call gets the place as soon as the first one ends, not 3 s after that.
    let mut next = env.session(&env.alice.clone()).await;
    let t = Instant::now();
    next.ok("get_workspace", json!({"workspace_id": ACME}))
        .await;
    let waited = t.elapsed();
    assert!(
        waited > Duration::from_millis(1500) && waited < Duration::from_millis(4500),
        "waited {waited:?}"
    );
    holder.await.unwrap();
    waiting.abort();
    let requests = env.sim_state().await["counters"]["requests"].clone();
    let models: u64 = requests
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("/models"))
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    assert_eq!(
        models, 1,
        "the cancelled call never reached Layer: {requests}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn readiness_names_the_oauth_store() {
    let sim = layer_sim::start(SimConfig::for_tests()).await.unwrap();
    let config = gateway::Config::for_local(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        sim.api_url().clone(),
    );
    let oauth = gateway::auth::demo_auth_server(&sim, &config.public_url)
        .await
        .unwrap();
    let services = gateway::Services::from_config(&config)
        .unwrap()
        .with_oauth(oauth);
    let gw = gateway::start(config, services).await.unwrap();
    let r = reqwest::get(format!("http://{}/readyz", gw.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("oauth store (sqlite): ok\n"), "{body}");
    gw.shutdown().await;
}

#[tokio::test]
async fn readiness_names_the_limiter() {
    let env = Env::start().await;
    let url = format!("http://{}/readyz", env.gateway.addr);
    let r = env.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let body = r.text().await.unwrap();
    assert!(body.contains("limiter (in-process): ok"), "{body}");
    assert!(!body.contains("oauth store"), "no OAuth, no line: {body}");
    env.shutdown().await;
}
