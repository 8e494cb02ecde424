//! Memory of the older HTTP+SSE transport: N initialized old-style streams held open on one
//! gateway (release build), against N streamable-HTTP sessions on another gateway measured
//! in the same run (the baseline), then all closed; each with the gateway built with glibc's
//! malloc (`--no-default-features`, the baseline for the allocator) and with jemalloc (the
//! default build on Linux).
//!
//! `cargo bench -p e2e-tests --bench legacy_sse_streams [-- N]` (N defaults to 1000). Prints
//! resident memory (VmRSS) of each gateway process: before, with the N sessions open, after
//! closing them, and with N new ones; the per-session cost; how much of it closing gave back
//! to the OS and how soon; and the ratios between transports and between allocators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e_tests::legacy_sse::{open_many, rss_falls_to_kib, settled_rss_kib};
use e2e_tests::process::{ChildProcess, wait_until_ok};
use e2e_tests::sim::TestSim;
use futures::StreamExt;
use url::Url;

/// How long after closing every session its memory is read: past jemalloc's 10 s decay.
const CLOSED_AFTER: Duration = Duration::from_secs(20);
/// How long to wait for memory to come back within a quarter of what the sessions took.
const RETURN_WITHIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
enum Allocator {
    Glibc,
    Jemalloc,
}

impl Allocator {
    fn name(self) -> &'static str {
        match self {
            Allocator::Glibc => "glibc",
            Allocator::Jemalloc => "jemalloc",
        }
    }
}

/// Builds the release gateway with `allocator` and returns the path of a copy of it (the
/// two builds write the same target path).
fn release_gateway(allocator: Allocator) -> PathBuf {
    let root = e2e_tests::paths::workspace_root();
    let mut command = std::process::Command::new(env!("CARGO"));
    command.args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "layer-mcp-gateway",
        "--bin",
        "layer-mcp-gateway",
    ]);
    // Both as the image builds it (no `demo`), so only the allocator differs.
    command.arg("--no-default-features");
    if let Allocator::Jemalloc = allocator {
        command.args(["--features", "jemalloc"]);
    }
    let status = command
        .current_dir(&root)
        .status()
        .expect("run cargo build --release");
    assert!(status.success(), "release build failed");
    let release = e2e_tests::paths::target_dir().join("release");
    let copy = release.join(format!("layer-mcp-gateway-bench-{}", allocator.name()));
    std::fs::copy(release.join("layer-mcp-gateway"), &copy).expect("copy the gateway binary");
    copy
}

struct Gateway {
    process: ChildProcess,
    url: Url,
}

async fn start_gateway(binary: &Path, sim: &TestSim, sessions: usize) -> Gateway {
    let port = e2e_tests::free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut command = std::process::Command::new(binary);
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
    let process = ChildProcess::spawn(
        &format!("bench-gateway-{port}"),
        command,
        &e2e_tests::paths::logs_dir(),
    );
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
    /// How soon after closing memory was back within a quarter of what the sessions took.
    returned_in: Option<Duration>,
}

impl Figures {
    fn grew(&self) -> u64 {
        self.open.saturating_sub(self.baseline)
    }

    fn per_session(&self, n: usize) -> f64 {
        self.grew() as f64 / n as f64
    }

    /// The share of what the sessions took that closing them gave back, in percent.
    fn returned_percent(&self) -> f64 {
        self.open.saturating_sub(self.closed) as f64 * 100.0 / self.grew().max(1) as f64
    }
}

/// Opens `n` sessions with `open`, measures, closes them, measures, opens `n` again, measures.
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
    let closed_at = tokio::time::Instant::now();
    let target = baseline + open_rss.saturating_sub(baseline) / 4;
    let (_, returned_in) = rss_falls_to_kib(pid, target, RETURN_WITHIN).await.unwrap();
    tokio::time::sleep_until(closed_at + CLOSED_AFTER).await;
    let closed = settled_rss_kib(pid, Duration::from_secs(10)).await.unwrap();
    let sessions = open(n).await;
    let reopened = settled_rss_kib(pid, Duration::from_secs(5)).await.unwrap();
    drop(sessions);
    Figures {
        baseline,
        open: open_rss,
        closed,
        reopened,
        returned_in,
    }
}

/// Old-style streams, then streamable sessions, each on a fresh gateway built with `allocator`.
async fn measure_both(allocator: Allocator, sim: &TestSim, n: usize) -> (Figures, Figures) {
    let binary = release_gateway(allocator);
    let pat = sim.pat("alice");

    let old = start_gateway(&binary, sim, n).await;
    let old_pid = old.process.pid().unwrap();
    let old_url = old.url.clone();
    let old_figures = measure(old_pid, n, |count| {
        let (url, pat) = (old_url.clone(), pat.clone());
        async move { open_many(&url, &pat, count, 50).await.unwrap() }
    })
    .await;
    drop(old);

    let new = start_gateway(&binary, sim, n).await;
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
    (old_figures, new_figures)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let sim = TestSim::start().await;
    let (glibc_old, glibc_new) = measure_both(Allocator::Glibc, &sim, n).await;
    let (jemalloc_old, jemalloc_new) = measure_both(Allocator::Jemalloc, &sim, n).await;

    println!("{n} sessions per gateway, resident memory (VmRSS, KiB), release build:");
    println!(
        "{:<38} {:>8} {:>8} {:>8} {:>9} {:>11} {:>9} {:>11}",
        "", "before", "open", "closed", "reopened", "KiB/session", "returned", "within 25%"
    );
    for (name, f) in [
        ("old HTTP+SSE streams, glibc", glibc_old),
        ("old HTTP+SSE streams, jemalloc", jemalloc_old),
        ("streamable HTTP sessions, glibc", glibc_new),
        ("streamable HTTP sessions, jemalloc", jemalloc_new),
    ] {
        let returned_in = f
            .returned_in
            .map(|d| format!("{:.1} s", d.as_secs_f64()))
            .unwrap_or_else(|| format!("> {} s", RETURN_WITHIN.as_secs()));
        println!(
            "{name:<38} {:>8} {:>8} {:>8} {:>9} {:>11.1} {:>8.0}% {:>11}",
            f.baseline,
            f.open,
            f.closed,
            f.reopened,
            f.per_session(n),
            f.returned_percent(),
            returned_in
        );
    }
    println!(
        "old stream / streamable session memory (baseline): glibc {:.2}x, jemalloc {:.2}x",
        glibc_old.per_session(n) / glibc_new.per_session(n),
        jemalloc_old.per_session(n) / jemalloc_new.per_session(n)
    );
    println!(
        "jemalloc / glibc memory per session (baseline): old streams {:.2}x, streamable sessions {:.2}x",
        jemalloc_old.per_session(n) / glibc_old.per_session(n),
        jemalloc_new.per_session(n) / glibc_new.per_session(n)
    );
}
