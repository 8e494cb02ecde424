//! The per-user, per-workspace caps through real MCP sessions against
//! `layer-mcp-gateway serve` processes (one with the in-process limiter, or three sharing a
//! Redis), in front of the simulator.
//!
//! The simulator's own limit of 5 unfinished runs is raised to 100 here, so Layer would
//! accept a 6th run: only the gateway can keep `max_unfinished_runs` at 5, and the tests
//! assert on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::gateway::{GatewayOptions, GatewayProcess, env_vars};
use e2e_tests::mcp::{self, McpClient};
use e2e_tests::redis::RedisServer;
use e2e_tests::sim::TestSim;
use futures::future::join_all;
use layer_sim::SimConfig;
use serde_json::{Value, json};
use test_support::mcp::{open_session, tool_call};

/// A session, shareable between tasks.
type Client = Arc<McpClient>;

const ACME: &str = "a0000000-0000-4000-8000-000000000001";
const ALICE_PERSONAL: &str = "a0000000-0000-4000-8000-000000000002";
const FLUX_2_PRO: &str = "b0000000-0000-4000-8000-000000000001";
const CHARACTER_TURNAROUND: &str = "c0000000-0000-4000-8000-000000000002";

async fn sim() -> TestSim {
    TestSim::start_with(SimConfig {
        max_concurrent_runs: 100,
        ..SimConfig::for_tests()
    })
    .await
}

/// Settings for gateways whose replicas may die: short leases, a queue that outwaits them.
fn short_leases() -> Vec<(String, String)> {
    env_vars(&[
        ("LAYER_MCP_CALL_LEASE_SECS", "3"),
        ("LAYER_MCP_RESERVATION_LEASE_SECS", "3"),
        ("LAYER_MCP_CALL_QUEUE_WAIT_SECS", "20"),
    ])
}

async fn gateway(
    sim: &TestSim,
    mut env: Vec<(String, String)>,
    redis: Option<&RedisServer>,
) -> GatewayProcess {
    if let Some(redis) = redis {
        env.push(("LAYER_MCP_REDIS_URL".to_owned(), redis.url()));
    }
    GatewayProcess::start(GatewayOptions {
        layer_api_url: sim.api_url(),
        env,
        ..GatewayOptions::default()
    })
    .await
}

async fn fleet(
    sim: &TestSim,
    redis: &RedisServer,
    env: Vec<(String, String)>,
) -> Vec<GatewayProcess> {
    let mut gateways = Vec::new();
    for _ in 0..3 {
        gateways.push(gateway(sim, env.clone(), Some(redis)).await);
    }
    gateways
}

fn held_forge(workspace: &str) -> Value {
    json!({"workspace_id": workspace, "model_id": FLUX_2_PRO, "prompt": "a red fox SIM_HOLD", "batch_size": 1})
}

fn held_workflow() -> Value {
    json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND,
           "inputs": {"character_prompt": "a knight SIM_HOLD"}})
}

/// Sessions of `pat`, spread over the gateways in turn.
async fn sessions(gateways: &[GatewayProcess], pat: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for i in 0..n {
        let url = gateways[i % gateways.len()].mcp_url();
        out.push(Arc::new(mcp::connect(&url, pat).await.expect("connect")));
    }
    out
}

/// A tool call's outcome: `Ok(structured)` or `Err(structured error)`.
async fn call(client: &McpClient, tool: &str, args: Value) -> Result<Value, Value> {
    let result = mcp::call(client, tool, args)
        .await
        .expect("the call is answered");
    let structured = mcp::structured(&result);
    if result.is_error == Some(true) {
        Err(structured)
    } else {
        Ok(structured)
    }
}

fn run_ids(error: &Value) -> BTreeSet<String> {
    error["active_runs"]
        .as_array()
        .unwrap_or_else(|| panic!("no active_runs: {error}"))
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `n` executes at once over `clients` (in turn); returns the accepted run ids and the
/// refusals.
async fn executes(clients: &[Client], n: usize, args: &Value) -> (BTreeSet<String>, Vec<Value>) {
    let calls = (0..n).map(|i| call(&clients[i % clients.len()], "execute_forge", args.clone()));
    let mut accepted = BTreeSet::new();
    let mut refused = Vec::new();
    for outcome in join_all(calls).await {
        match outcome {
            Ok(run) => {
                accepted.insert(run["inference_id"].as_str().unwrap().to_owned());
            }
            Err(error) => refused.push(error),
        }
    }
    (accepted, refused)
}

/// The whole first "Done when" item, on one gateway or spread over several.
async fn fifty_executes_admit_exactly_five(sim: &TestSim, gateways: &[GatewayProcess]) {
    let alice_pat = sim.pat("alice");
    let alice = sessions(gateways, &alice_pat, 10).await;
    let alice_elsewhere = sessions(gateways, &alice_pat, 1).await;
    let bob = sessions(gateways, &sim.pat("bob"), 1).await;

    let args = held_forge(ACME);
    let (fifty, personal, bobs) = tokio::join!(
        executes(&alice, 50, &args),
        call(
            &alice_elsewhere[0],
            "execute_forge",
            held_forge(ALICE_PERSONAL)
        ),
        call(&bob[0], "execute_forge", held_forge(ACME)),
    );
    let (accepted, refused) = fifty;
    assert_eq!(
        accepted.len(),
        5,
        "exactly 5 accepted; refusals: {refused:?}"
    );
    assert_eq!(refused.len(), 45);
    for error in &refused {
        assert_eq!(error["code"], "RATE_LIMITED", "{error}");
        assert_eq!(error["status"], 429);
        assert_eq!(
            run_ids(error),
            accepted,
            "the refusal names the 5 runs: {error}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            accepted.iter().all(|id| message.contains(id.as_str())),
            "{message}"
        );
        assert!(error["retry_after_seconds"].as_u64().unwrap() >= 1);
    }
    personal.expect("another workspace of the same user is unaffected");
    bobs.expect("another user on the same workspace is unaffected");
    assert_eq!(sim.max_unfinished_runs("alice", ACME).await, 5);
    assert_eq!(sim.counter("runs_created").await, 7);

    // Layer finishes them; nobody polls. The next executes check with Layer and go through.
    for id in &accepted {
        sim.finish_run(id).await;
    }
    let (again, refused) = executes(&alice, 5, &held_forge(ACME)).await;
    assert_eq!(again.len(), 5, "5 more accepted: {refused:?}");
    assert!(again.is_disjoint(&accepted));
    let sixth = call(&alice[3], "execute_forge", held_forge(ACME))
        .await
        .unwrap_err();
    assert_eq!(run_ids(&sixth), again);
    assert_eq!(sim.max_unfinished_runs("alice", ACME).await, 5);
    assert_eq!(sim.counter("runs_created").await, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_executes_on_one_gateway_admit_exactly_five() {
    let sim = sim().await;
    let gateway = gateway(&sim, Vec::new(), None).await;
    fifty_executes_admit_exactly_five(&sim, std::slice::from_ref(&gateway)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_executes_over_three_gateways_sharing_redis_admit_exactly_five() {
    let sim = sim().await;
    let redis = RedisServer::start();
    let gateways = fleet(&sim, &redis, Vec::new()).await;
    fifty_executes_admit_exactly_five(&sim, &gateways).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_abandons_its_runs_starts_new_ones_as_soon_as_layer_finished_them() {
    let sim = sim().await;
    let redis = RedisServer::start();
    let gateways = fleet(&sim, &redis, Vec::new()).await;
    let pat = sim.pat("alice");
    // Three workflow runs and two forge runs, then the client goes away without polling.
    let first = sessions(&gateways, &pat, 3).await;
    let mut started = Vec::new();
    for i in 0..5 {
        let (tool, args) = if i < 3 {
            ("execute_workflow", held_workflow())
        } else {
            ("execute_forge", held_forge(ACME))
        };
        let run = call(&first[i % 3], tool, args).await.unwrap();
        let id = run.get("run_id").or(run.get("inference_id")).unwrap();
        started.push(id.as_str().unwrap().to_owned());
    }
    let refused = call(&first[0], "execute_forge", held_forge(ACME))
        .await
        .unwrap_err();
    assert_eq!(run_ids(&refused), started.iter().cloned().collect());
    let workflows: Vec<&Value> = refused["active_runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "workflow")
        .collect();
    assert_eq!(workflows.len(), 3);
    assert!(
        workflows
            .iter()
            .all(|r| r["workflow_id"] == CHARACTER_TURNAROUND)
    );
    drop(first);

    for id in &started {
        sim.finish_run(id).await;
    }
    // A new session (on whichever replica) starts 5 at once, without waiting for any lease.
    let t = Instant::now();
    let second = sessions(&gateways, &pat, 3).await;
    let (accepted, refused) = executes(&second, 5, &held_forge(ACME)).await;
    assert_eq!(accepted.len(), 5, "{refused:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(sim.max_unfinished_runs("alice", ACME).await, 5);
}

/// How many requests reached the simulator's fault rules for paths containing `needle`
/// (counted on arrival; its request counters count after a latency fault's delay).
async fn arrivals(sim: &TestSim, needle: &str) -> u64 {
    let faults: Value = reqwest::get(format!("{}/_sim/faults", sim.origin()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    faults["faults"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["path_prefix"]
                .as_str()
                .is_some_and(|p| p.contains(needle))
        })
        .filter_map(|f| f["matched"].as_u64())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkilled_gateway_frees_its_places_within_the_lease() {
    let sim = sim().await;
    let redis = RedisServer::start();
    let mut gateways = fleet(&sim, &redis, short_leases()).await;
    let pat = sim.pat("alice");
    // Replica 0 starts two runs, then fills the 5 call places with slow reads.
    let doomed = sessions(&gateways[..1], &pat, 5).await;
    let mut runs = BTreeSet::new();
    for client in &doomed[..2] {
        let run = call(client, "execute_forge", held_forge(ACME))
            .await
            .unwrap();
        runs.insert(run["inference_id"].as_str().unwrap().to_owned());
    }
    sim.add_faults(
        json!({"kind": "latency", "latency_ms": 60000, "method": "GET",
                          "path_prefix": format!("/api/v1/workspaces/{ACME}/models")}),
    )
    .await;
    // Never answered: the replica dies first.
    let slow: Vec<_> = doomed
        .iter()
        .map(|client| {
            let client = client.clone();
            tokio::spawn(async move {
                let args = json!({"workspace_id": ACME});
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    call(&client, "list_models", args),
                )
                .await;
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while arrivals(&sim, "/models").await < 5 {
        assert!(Instant::now() < deadline, "the slow calls reached Layer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A read through another replica waits: all 5 places are held.
    let others = sessions(&gateways[1..], &pat, 2).await;
    let probe = {
        let client = others[0].clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let outcome = call(&client, "get_workspace", json!({"workspace_id": ACME})).await;
            (outcome, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!probe.is_finished(), "the probe waits for a place");

    gateways[0].kill_hard().await;
    let killed = Instant::now();
    let (outcome, _) = probe.await.unwrap();
    let freed_after = killed.elapsed();
    outcome.expect("admitted once the dead replica's places expire");
    assert!(
        freed_after < Duration::from_secs(3) + Duration::from_millis(1500),
        "freed {freed_after:?} after the kill (call lease 3 s)"
    );
    for task in slow {
        task.abort();
    }

    // The dead replica's runs still run at Layer and still hold their places.
    let (accepted, _) = executes(&others, 5, &held_forge(ACME)).await;
    assert_eq!(accepted.len(), 3);
    let refused = call(&others[1], "execute_forge", held_forge(ACME))
        .await
        .unwrap_err();
    let named = run_ids(&refused);
    assert!(
        runs.is_subset(&named) && accepted.is_subset(&named),
        "{refused}"
    );
    assert_eq!(sim.max_unfinished_runs("alice", ACME).await, 5);
}

async fn readyz(gateway: &GatewayProcess) -> (u16, String) {
    let r = reqwest::get(gateway.url("/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_redis_fails_executes_closed_and_the_fleet_recovers_when_it_is_back() {
    let sim = sim().await;
    let mut redis = RedisServer::start();
    let gateways = fleet(&sim, &redis, short_leases()).await;
    let clients = sessions(&gateways, &sim.pat("alice"), 3).await;
    let mut runs = BTreeSet::new();
    for client in &clients {
        let run = call(client, "execute_forge", held_forge(ACME))
            .await
            .unwrap();
        runs.insert(run["inference_id"].as_str().unwrap().to_owned());
    }

    redis.kill();
    let created = sim.counter("runs_created").await;
    for client in &clients {
        let t = Instant::now();
        let error = call(client, "execute_forge", held_forge(ACME))
            .await
            .unwrap_err();
        assert_eq!(error["code"], "UPSTREAM_UNAVAILABLE", "{error}");
        assert!(error["retry_after_seconds"].as_u64().unwrap() >= 1);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("no run was started"),
            "{error}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "failed fast: {:?}",
            t.elapsed()
        );
        // Reads go on.
        let workspace = call(client, "get_workspace", json!({"workspace_id": ACME}))
            .await
            .unwrap();
        assert_eq!(workspace["name"], "Acme Studio");
    }
    assert_eq!(sim.counter("runs_created").await, created, "fail closed");
    let (status, body) = readyz(&gateways[0]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("limiter (redis): unreachable"), "{body}");

    redis.start_again(); // empty: nothing was saved
    let deadline = Instant::now() + Duration::from_secs(20);
    for gateway in &gateways {
        loop {
            let (_, body) = readyz(gateway).await;
            if body.contains("limiter (redis): ok") {
                break;
            }
            assert!(Instant::now() < deadline, "not recovered: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The three runs were written back: exactly two more fit.
    let (accepted, refused) = executes(&clients, 5, &held_forge(ACME)).await;
    assert_eq!(accepted.len(), 2, "{refused:?}");
    for error in &refused {
        assert_eq!(error["code"], "RATE_LIMITED", "{error}");
        let named = run_ids(error);
        assert!(
            runs.is_subset(&named) && accepted.is_subset(&named),
            "{error}"
        );
    }
    assert_eq!(sim.max_unfinished_runs("alice", ACME).await, 5);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_call_waits_for_a_place_and_one_whose_client_hangs_up_leaves_the_queue() {
    let sim = sim().await;
    let gateway = gateway(&sim, Vec::new(), None).await;
    let pat = sim.pat("alice");
    // Listing workflows takes 2 s, listing models 20 s; reading the workspace is instant.
    sim.add_faults(json!([
        {"kind": "latency", "latency_ms": 2000, "method": "GET",
         "path_prefix": format!("/api/v1/workspaces/{ACME}/workflows")},
        {"kind": "latency", "latency_ms": 20000, "method": "GET",
         "path_prefix": format!("/api/v1/workspaces/{ACME}/models")}
    ]))
    .await;
    let busy = sessions(std::slice::from_ref(&gateway), &pat, 5).await;
    let workspace = json!({"workspace_id": ACME});
    let mut slow = vec![tokio::spawn({
        let client = busy[0].clone();
        let args = workspace.clone();
        async move { call(&client, "list_workflows", args).await.map(|_| ()) }
    })];
    for client in &busy[1..] {
        let client = client.clone();
        let args = workspace.clone();
        slow.push(tokio::spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(25), call(&client, "list_models", args))
                    .await;
            Ok(())
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(400)).await;

    // A 6th call (a slow one) queues; its client hangs up while it waits.
    let http = reqwest::Client::new();
    let session = open_session(&http, &gateway.mcp_url(), &pat, "hang-up").await;
    let hang_up = {
        let http = http.clone();
        let url = gateway.mcp_url();
        let pat = pat.clone();
        tokio::spawn(async move {
            let arguments = json!({"workspace_id": ACME});
            let response = tool_call(&http, &url, &pat, &session, "list_models", arguments)
                .send()
                .await
                .unwrap();
            // The answer is a stream that stays open while the call waits; stop reading it
            // and close the connection (a response dropped unread is not kept for reuse).
            assert_eq!(response.status(), 200);
            let mut body = response.bytes_stream();
            let read = tokio::time::timeout(Duration::from_millis(800), async {
                use futures::StreamExt;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.unwrap();
                    assert!(
                        !String::from_utf8_lossy(&chunk).contains("\"result\""),
                        "the queued call answered before its client hung up"
                    );
                }
            })
            .await;
            assert!(read.is_err(), "the stream was still open");
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A 7th queues behind it, waits, and is admitted when the 2-second call ends: the
    // hung-up call is not in front of it any more (it would hold the place for 20 s).
    let next = sessions(std::slice::from_ref(&gateway), &pat, 1).await;
    let t = Instant::now();
    let outcome = call(&next[0], "get_workspace", workspace.clone()).await;
    let waited = t.elapsed();
    outcome.expect("the queued call succeeds");
    hang_up.await.unwrap();
    assert!(
        waited > Duration::from_millis(700) && t0.elapsed() < Duration::from_secs(5),
        "waited {waited:?}, done {:?} after the slow calls started",
        t0.elapsed()
    );
    slow.remove(0)
        .await
        .unwrap()
        .expect("the 2-second call succeeds");
    assert_eq!(
        arrivals(&sim, "/models").await,
        4,
        "the hung-up call never reached Layer"
    );
    for task in slow {
        task.abort();
    }
}
