//! Tool-call throughput and latency through the gateway (real MCP over loopback HTTP)
//! against direct calls to the simulator, measured in the same run, printed as a table
//! with ratios to the direct baseline.
//!
//! `cargo bench -p layer-mcp-gateway --bench tool_calls` (env: `BENCH_CALLS`, default 2000;
//! `BENCH_CONCURRENCY`, default 16). Each line is a [`Scenario`]: later work adds lines
//! (three replicas behind a proxy) without touching the measurement.
//!
//! The per-user caps: the gateway lines run with the in-process limiter (the default) and
//! with the Redis one (a private Redis started on a free port; skipped when it is not
//! installed), and two lines measure the limiter alone as the gateway uses it on every call
//! (take a call place, give it back). The per-user call cap is raised for the benchmark: all
//! workers are one user in one workspace, and the cap would otherwise measure queueing, not
//! cost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use layer_api::{BearerToken, ClientConfig, LayerClient, WorkspaceId};
use secrecy::ExposeSecret;
use serde_json::json;
use test_support::load::closed_loop;
use test_support::mcp::{open_sessions, tool_call};
use test_support::redis::RedisServer;
use test_support::sse::SseReader;

const WORKSPACE: &str = "a0000000-0000-4000-8000-000000000001";

type CallFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One way of making the same logical call ("read a workspace").
trait Scenario: Send + Sync {
    fn name(&self) -> String;
    /// Makes one call; `worker` identifies the caller (its session).
    fn call(self: Arc<Self>, worker: usize) -> CallFuture;
}

/// Baseline: the typed client straight to the simulator.
struct Direct {
    client: LayerClient,
    token: BearerToken,
}

impl Scenario for Direct {
    fn name(&self) -> String {
        "direct to simulator (layer-api client)".into()
    }
    fn call(self: Arc<Self>, _worker: usize) -> CallFuture {
        Box::pin(async move {
            let ws: WorkspaceId = WORKSPACE.parse().unwrap();
            self.client
                .with_token(&self.token)
                .get_workspace(ws)
                .await
                .unwrap();
        })
    }
}

/// Through the gateway: `tools/call get_workspace` in an MCP session per worker, with the
/// headers real clients send (both media types: the answer is an SSE stream).
struct ThroughGateway {
    http: reqwest::Client,
    url: String,
    pat: String,
    sessions: Vec<String>,
    label: String,
}

impl ThroughGateway {
    async fn new(label: &str, url: String, pat: String, workers: usize) -> Self {
        let (http, sessions) = open_sessions(&url, &pat, workers).await;
        Self {
            http,
            url,
            pat,
            sessions,
            label: label.to_owned(),
        }
    }
}

impl Scenario for ThroughGateway {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn call(self: Arc<Self>, worker: usize) -> CallFuture {
        Box::pin(async move {
            let session = &self.sessions[worker % self.sessions.len()];
            let arguments = json!({"workspace_id": WORKSPACE});
            let response = tool_call(
                &self.http,
                &self.url,
                &self.pat,
                session,
                "get_workspace",
                arguments,
            )
            .send()
            .await
            .unwrap();
            assert!(response.status().is_success());
            // Read until the response event.
            let v = SseReader::new(response).json_rpc_response().await.unwrap();
            assert_eq!(v["result"]["isError"], false, "{v}");
        })
    }
}

/// The limiter alone, as the gateway uses it around every upstream call: take a call place
/// for the caller's (user, workspace), then give it back.
struct LimiterOnly {
    label: String,
    limiter: limiter::Limiter,
    key: limiter::CapKey,
}

impl Scenario for LimiterOnly {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn call(self: Arc<Self>, _worker: usize) -> CallFuture {
        Box::pin(async move {
            let permit = self
                .limiter
                .acquire_call(&self.key, Duration::from_secs(30))
                .await
                .unwrap();
            drop(permit);
        })
    }
}

struct Stats {
    calls: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Stats {
    fn throughput(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

async fn measure(scenario: Arc<dyn Scenario>, calls: usize, concurrency: usize) -> Stats {
    // Warm up pools and caches.
    for w in 0..concurrency {
        scenario.clone().call(w).await;
    }
    let measured = closed_loop(calls, concurrency, move |w| scenario.clone().call(w)).await;
    Stats {
        calls: measured.latencies.len(),
        elapsed: measured.elapsed,
        p50: measured.quantile(0.50),
        p99: measured.quantile(0.99),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing we need.
    let calls = env_usize("BENCH_CALLS", 2000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 16);

    let sim = layer_sim::start(layer_sim::SimConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    })
    .await
    .unwrap();
    let pat = sim
        .fixtures()
        .active_pat("alice")
        .unwrap()
        .expose_secret()
        .to_owned();
    let mut config =
        gateway::Config::for_local(SocketAddr::from(([127, 0, 0, 1], 0)), sim.api_url().clone());
    // Measure the cost of the caps, not the queueing one user's 16 workers would meet.
    config.caps.max_calls_in_flight = 100_000;
    let services = gateway::Services::from_config(&config).unwrap();
    let gw = gateway::start(config.clone(), services).await.unwrap();
    let redis = RedisServer::is_installed().then(RedisServer::start);
    let redis_gw = match &redis {
        Some(redis) => {
            let mut config = config.clone();
            config.caps.store = gateway::LimiterStore::Redis(redis.url().parse().unwrap());
            let services = gateway::Services::from_config(&config).unwrap();
            Some(gateway::start(config, services).await.unwrap())
        }
        None => {
            println!("(Redis is not installed: the Redis lines are skipped)");
            None
        }
    };
    let limiter_config = config.caps.limiter_config();
    let key = limiter::CapKey::new("pat:bench", Some(WORKSPACE));

    let direct: Arc<dyn Scenario> = Arc::new(Direct {
        client: LayerClient::new(ClientConfig::with_base_url(sim.api_url().clone())).unwrap(),
        token: BearerToken::new(pat.clone()).unwrap(),
    });
    let mut scenarios: Vec<Arc<dyn Scenario>> = vec![
        direct,
        Arc::new(
            ThroughGateway::new(
                "through the gateway, limiter in process",
                gw.mcp_url(),
                pat.clone(),
                concurrency,
            )
            .await,
        ),
    ];
    if let Some(redis_gw) = &redis_gw {
        scenarios.push(Arc::new(
            ThroughGateway::new(
                "through the gateway, limiter in Redis",
                redis_gw.mcp_url(),
                pat.clone(),
                concurrency,
            )
            .await,
        ));
    }
    scenarios.push(Arc::new(LimiterOnly {
        label: "limiter alone, in process (call place)".into(),
        limiter: limiter::Limiter::in_process(limiter_config.clone()).unwrap(),
        key: key.clone(),
    }));
    if let Some(redis) = &redis {
        scenarios.push(Arc::new(LimiterOnly {
            label: "limiter alone, Redis (call place)".into(),
            limiter: limiter::Limiter::redis(&redis.url(), limiter_config.clone()).unwrap(),
            key: key.clone(),
        }));
    }

    println!(
        "tool call: get_workspace; {calls} calls, {concurrency} concurrent; loopback; one process"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>14}",
        "scenario", "calls/s", "p50 ms", "p99 ms", "vs direct"
    );
    let mut baseline: Option<Stats> = None;
    for scenario in scenarios {
        let stats = measure(scenario.clone(), calls, concurrency).await;
        let ratio = match &baseline {
            None => "1.00x".to_owned(),
            Some(b) => format!(
                "{:.2}x thr, {:.2}x p50",
                stats.throughput() / b.throughput(),
                stats.p50.as_secs_f64() / b.p50.as_secs_f64()
            ),
        };
        println!(
            "{:<44} {:>10.0} {:>10.3} {:>10.3} {:>14}",
            scenario.name(),
            stats.throughput(),
            stats.p50.as_secs_f64() * 1000.0,
            stats.p99.as_secs_f64() * 1000.0,
            ratio
        );
        if baseline.is_none() {
            baseline = Some(stats);
        }
    }
    gw.shutdown().await;
    if let Some(redis_gw) = redis_gw {
        redis_gw.shutdown().await;
    }
    drop(redis);
    sim.shutdown().await;
}
