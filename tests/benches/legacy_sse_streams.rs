//! Memory of the older HTTP+SSE transport: N initialized old-style streams held open on one
//! gateway (release build), against N streamable-HTTP sessions on another gateway measured
//! in the same run (the baseline), then both closed.
//!
//! `cargo bench -p e2e-tests --bench legacy_sse_streams [-- N]` (N defaults to 1000). Prints
//! resident memory (VmRSS) of each gateway process: before, with the N sessions open, after
//! closing them, and with N new ones, and the per-session cost as a ratio to the baseline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use e2e_tests::legacy_sse::{open_many, settled_rss_kib};
use e2e_tests::process::{ChildProcess, wait_until_ok};
use e2e_tests::sim::TestSim;
use futures::StreamExt;
use url::Url;

/// Builds the release gateway once and returns its path.
fn release_gateway() -> PathBuf {
    let root = e2e_tests::paths::workspace_root();
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "layer-mcp-gateway",
            "--bin",
            "layer-mcp-gateway",
        ])
        .current_dir(&root)
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "release build failed");
    e2e_tests::paths::target_dir()
        .join("release")
        .join("layer-mcp-gateway")
}

struct Gateway {
    process: ChildProcess,
    url: Url,
}

async fn start_gateway(binary: &PathBuf, sim: &TestSim, sessions: usize) -> Gateway {
    let port = e2e_tests::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--public-url", &origin, "--layer-api-url", &sim.api_url()])
        .env("RUST_LOG", "warn")
        // One user holds every session here.
        .env(
            "LAYER_MCP_LEGACY_SSE_STREAMS_PER_USER",
            sessions.to_string(),
        )
        .env(
            "LAYER_MCP_MAX_SESSIONS_PER_USER",
            (sessions + 100).to_string(),
        );
    let process = ChildProcess::spawn(&format!("bench-gateway-{port}"), command);
    wait_until_ok(&format!("{origin}/healthz"), Duration::from_secs(30))
        .await
        .expect("the gateway starts");
    Gateway {
        process,
        url: Url::parse(&format!("{origin}/mcp")).unwrap(),
    }
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    baseline: u64,
    open: u64,
    closed: u64,
    reopened: u64,
}

impl Figures {
    fn per_session(&self, n: usize) -> f64 {
        self.open.saturating_sub(self.baseline) as f64 / n as f64
    }
}

/// Opens `n` sessions with `open`, measures, closes them, opens `n` again, measures.
async fn measure<T, F, Fut>(pid: u32, n: usize, open: F) -> Figures
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Vec<T>>,
{
    drop(open(20).await); // warm-up: pools, caches, thread stacks
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = settled_rss_kib(pid, Duration::from_secs(5)).await.unwrap();
    let sessions = open(n).await;
    assert_eq!(sessions.len(), n);
    let open_rss = settled_rss_kib(pid, Duration::from_secs(5)).await.unwrap();
    drop(sessions);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed = settled_rss_kib(pid, Duration::from_secs(10)).await.unwrap();
    let sessions = open(n).await;
    let reopened = settled_rss_kib(pid, Duration::from_secs(5)).await.unwrap();
    drop(sessions);
    Figures {
        baseline,
        open: open_rss,
        closed,
        reopened,
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let binary = release_gateway();
    let sim = TestSim::start().await;
    let pat = sim.pat("alice");

    let old = start_gateway(&binary, &sim, n).await;
    let old_pid = old.process.pid().unwrap();
    let old_url = old.url.clone();
    let old_figures = measure(old_pid, n, |count| {
        let (url, pat) = (old_url.clone(), pat.clone());
        async move { open_many(&url, &pat, count, 50).await.unwrap() }
    })
    .await;

    let new = start_gateway(&binary, &sim, n).await;
    let new_pid = new.process.pid().unwrap();
    let new_url = new.url.to_string();
    let new_figures = measure(new_pid, n, |count| {
        let (url, pat) = (new_url.clone(), pat.clone());
        async move {
            futures::stream::iter(0..count)
                .map(|_| e2e_tests::mcp::connect(&url, &pat))
                .buffer_unordered(50)
                .map(|client| client.unwrap())
                .collect::<Vec<_>>()
                .await
        }
    })
    .await;

    println!("{n} sessions per gateway, resident memory (VmRSS, KiB):");
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "", "before", "open", "closed", "reopened", "KiB/session"
    );
    for (name, f) in [
        ("old HTTP+SSE streams", old_figures),
        ("streamable HTTP sessions (baseline)", new_figures),
    ] {
        println!(
            "{name:<34} {:>9} {:>9} {:>9} {:>9} {:>11.1}",
            f.baseline,
            f.open,
            f.closed,
            f.reopened,
            f.per_session(n)
        );
    }
    println!(
        "old stream / streamable session memory: {:.2}x",
        old_figures.per_session(n) / new_figures.per_session(n)
    );
}
