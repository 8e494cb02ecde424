//! Tool calls through replicas behind the round-robin proxy, against one gateway
//! called directly, measured in the same run and printed with ratios to that baseline.
//!
//! `cargo bench -p e2e-tests --bench cluster_tool_calls` (env: `BENCH_CALLS`, default 10000;
//! `BENCH_CONCURRENCY`, default 16; `BENCH_PROFILE=debug` to use the debug build instead of
//! building the release one). Every line is the same call: `tools/call get_workspace` in an
//! existing 2025-11-25 session (one per worker, answered as an SSE stream), which a gateway
//! process turns into one `GET /workspaces/{id}` at the in-process simulator. Lines:
//!
//! - one gateway, called directly, limiter in process (the baseline);
//! - the same gateway behind the proxy (the cost of the extra hop, a fresh backend
//!   connection per request);
//! - one gateway with `LAYER_MCP_REDIS_URL` behind the proxy (sessions, PAT cache and
//!   limiter in Redis: the cost of sharing, without more replicas);
//! - three replicas sharing Redis behind the proxy (the deployment).
//!
//! The per-user call cap is raised (every worker is one user in one workspace; the cap would
//! measure queueing, not cost). Everything shares the machine's cores: three replicas do not
//! get three times the CPU here, so the last line shows the cost of spreading, not a speed-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use e2e_tests::cluster::{Cluster, ClusterOptions};
use e2e_tests::gateway::{GatewayOptions, GatewayProcess, env_vars};
use e2e_tests::proxy::Proxy;
use e2e_tests::sim::TestSim;
use serde_json::{Value, json};
use test_support::load::closed_loop;
use test_support::mcp::open_sessions;

const WORKSPACE: &str = "a0000000-0000-4000-8000-000000000001";

fn bench_env() -> Vec<(String, String)> {
    env_vars(&[
        ("RUST_LOG", "warn"),
        ("LAYER_MCP_MAX_CALLS_IN_FLIGHT", "100000"),
        ("LAYER_MCP_MAX_SESSIONS_PER_USER", "10000"),
    ])
}

/// The gateway binary: the release build (built here), or the debug one.
fn gateway_binary() -> PathBuf {
    if std::env::var("BENCH_PROFILE").as_deref() == Ok("debug") {
        eprintln!("building the debug binaries (cargo build --workspace --bins)");
        return e2e_tests::paths::binary("layer-mcp-gateway");
    }
    // Not quiet: on a cold target directory this build is most of the run's time.
    eprintln!("building the release gateway (cargo build --release -p layer-mcp-gateway)");
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "layer-mcp-gateway"])
        .args(["--bin", "layer-mcp-gateway"])
        .current_dir(e2e_tests::paths::workspace_root())
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "release build failed");
    e2e_tests::paths::target_dir()
        .join("release")
        .join("layer-mcp-gateway")
}

/// MCP sessions at `url`, one per worker, and the way to call in them.
struct Sessions {
    http: reqwest::Client,
    url: String,
    pat: String,
    ids: Vec<String>,
}

impl Sessions {
    async fn open(url: String, pat: String, workers: usize) -> Sessions {
        let (http, ids) = open_sessions(&url, &pat, workers).await;
        Sessions {
            http,
            url,
            pat,
            ids,
        }
    }

    /// One `tools/call` in worker `worker`'s session, read until its result.
    ///
    /// Each call has its own JSON-RPC id: rmcp routes a response to the HTTP request by
    /// (session, request id), so two calls in flight in one session with the same id get
    /// each other's answer, and one of them none at all.
    async fn call(&self, worker: usize, id: u64) {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.pat)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.ids[worker % self.ids.len()])
            .header("mcp-protocol-version", "2025-11-25")
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "get_workspace", "arguments": {"workspace_id": WORKSPACE}}}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let v: Value = if json {
            response.json().await.unwrap()
        } else {
            // Read until a complete SSE event carries the result.
            e2e_tests::sse::SseReader::new(response)
                .json_rpc_response()
                .await
                .expect("stream ended without a result")
        };
        assert_eq!(v["id"], id, "{v}");
        assert_eq!(v["result"]["isError"], false, "{v}");
    }
}

#[derive(Clone, Copy)]
struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// How long one call may take before the bench gives up on it: a call that never gets its
/// answer must fail the run, not stall it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `calls` calls by `concurrency` workers, each with its own session and one call in flight
/// at a time (as an MCP client does), taking the next call from a shared counter.
async fn measure(label: &str, sessions: Arc<Sessions>, calls: usize, concurrency: usize) -> Stats {
    let ids = Arc::new(AtomicU64::new(2));
    let call = |sessions: Arc<Sessions>, ids: Arc<AtomicU64>, worker: usize| async move {
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::time::timeout(CALL_TIMEOUT, sessions.call(worker, id))
            .await
            .unwrap_or_else(|_| {
                panic!("call {id} of worker {worker} got no answer in {CALL_TIMEOUT:?}")
            });
    };
    // Warm up: connections, caches, the PAT check with Layer, each replica's copy of each
    // session.
    for w in 0..concurrency {
        for _ in 0..3 {
            call(sessions.clone(), ids.clone(), w).await;
        }
    }
    eprintln!("{label}: warmed up; {calls} calls, {concurrency} at a time");
    let measured = closed_loop(calls, concurrency, move |worker| {
        call(sessions.clone(), ids.clone(), worker)
    })
    .await;
    let elapsed = measured.elapsed;
    let stats = Stats {
        per_sec: measured.per_sec(),
        p50: measured.quantile(0.50),
        p99: measured.quantile(0.99),
    };
    eprintln!(
        "{label}: {:.0} calls/s in {:.1} s",
        stats.per_sec,
        elapsed.as_secs_f64()
    );
    stats
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let binary = gateway_binary();
    eprintln!("gateway binary: {}", binary.display());
    let sim = TestSim::start().await;
    let pat = sim.pat("alice");
    let mut lines: Vec<(String, Stats)> = Vec::new();

    // One gateway, no Redis: direct, then behind the proxy.
    {
        let gateway = GatewayProcess::start(GatewayOptions {
            layer_api_url: sim.api_url(),
            env: bench_env(),
            binary: Some(binary.clone()),
            ..GatewayOptions::default()
        })
        .await;
        eprintln!("one gateway started; opening {concurrency} sessions");
        let direct = Arc::new(Sessions::open(gateway.mcp_url(), pat.clone(), concurrency).await);
        lines.push((
            "one gateway, direct (baseline)".into(),
            measure("direct", direct, calls, concurrency).await,
        ));
        let proxy = Proxy::start(&[gateway.port]);
        let proxied = Arc::new(Sessions::open(proxy.url("/mcp"), pat.clone(), concurrency).await);
        lines.push((
            "one gateway behind the proxy".into(),
            measure("proxied", proxied, calls, concurrency).await,
        ));
    }
    for (replicas, label) in [
        (1, "one gateway with Redis behind the proxy"),
        (3, "three replicas sharing Redis behind the proxy"),
    ] {
        let cluster = Cluster::start_with(ClusterOptions {
            env: bench_env(),
            replicas,
            binary: Some(binary.clone()),
            ..ClusterOptions::default()
        })
        .await;
        eprintln!("{label}: started; opening {concurrency} sessions");
        let sessions =
            Arc::new(Sessions::open(cluster.url(), cluster.pat("alice"), concurrency).await);
        let stats = measure(label, sessions, calls, concurrency).await;
        let counts = cluster.proxy.counts();
        println!("{label}: requests per replica {counts:?}");
        lines.push((label.into(), stats));
    }

    let base = lines[0].1;
    println!(
        "\n{calls} calls of get_workspace, {concurrency} at a time, {} build:\n",
        if std::env::var("BENCH_PROFILE").as_deref() == Ok("debug") {
            "debug"
        } else {
            "release"
        }
    );
    println!("| scenario | calls/s | p50 ms | p99 ms | vs direct |");
    println!("|---|---:|---:|---:|---|");
    for (name, s) in &lines {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2}x throughput, {:.2}x p50 |",
            s.per_sec,
            ms(s.p50),
            ms(s.p99),
            s.per_sec / base.per_sec,
            ms(s.p50) / ms(base.p50),
        );
    }
}
