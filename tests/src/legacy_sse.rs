//! The older HTTP+SSE transport (2024-11-05) in bulk: many initialized streams at once, and
//! a process's resident memory, for the many-streams test and the memory benchmark.

use std::time::Duration;

use futures::StreamExt;
use legacy_sse::client::{self, Connection};
use serde_json::{Value, json};
use url::Url;

/// An initialized old-style session: its stream and its POST URL.
pub struct OldSession {
    pub connection: Connection,
    next_id: i64,
}

impl OldSession {
    /// Opens a stream at `url` as `pat` and completes the 2024-11-05 handshake on it.
    pub async fn open(http: &reqwest::Client, url: &Url, pat: &str) -> anyhow::Result<OldSession> {
        let connection = client::open(http, url, client::bearer(pat)).await?;
        let mut session = OldSession {
            connection,
            next_id: 0,
        };
        let reply = session
            .request(
                "initialize",
                json!({"protocolVersion": "2024-11-05", "capabilities": {},
                       "clientInfo": {"name": "e2e-legacy-sse", "version": "1"}}),
            )
            .await?;
        anyhow::ensure!(
            reply["result"]["protocolVersion"] == "2024-11-05",
            "initialize: {reply}"
        );
        session
            .notify(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(session)
    }

    /// POSTs a notification (expects 202).
    pub async fn notify(&self, message: Value) -> anyhow::Result<()> {
        let response = self.connection.post_json(&message).await?;
        anyhow::ensure!(response.status() == 202, "POST: {}", response.status());
        Ok(())
    }

    /// Sends a request and waits for its reply on the stream (within 30 s).
    pub async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.notify(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        let reply = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let Some(event) = self.connection.events.next_event().await else {
                    anyhow::bail!("the stream ended");
                };
                let (kind, data) = event?;
                if kind != "message" {
                    continue;
                }
                let message: Value = serde_json::from_str(&data)?;
                if message["id"] == json!(id) {
                    return Ok(message);
                }
            }
        })
        .await??;
        Ok(reply)
    }
}

/// Opens `count` initialized sessions, `parallel` at a time.
pub async fn open_many(
    url: &Url,
    pat: &str,
    count: usize,
    parallel: usize,
) -> anyhow::Result<Vec<OldSession>> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(parallel)
        .build()?;
    let results: Vec<anyhow::Result<OldSession>> = futures::stream::iter(0..count)
        .map(|_| OldSession::open(&http, url, pat))
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Resident memory of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}

/// The resident memory of `pid` once it has stopped changing much (allocators release
/// memory lazily), sampled for up to `within`.
pub async fn settled_rss_kib(pid: u32, within: Duration) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = rss_kib(pid)?;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rss_kib(pid)?;
        if now.abs_diff(last) * 100 <= last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

/// Samples the resident memory of `pid` every 250 ms until it is at or below `target_kib`
/// (allocators that return memory do it over seconds: jemalloc's decay is 10 s), for up to
/// `within`. Returns that reading and how long it took, or the lowest reading seen and `None`.
pub async fn rss_falls_to_kib(
    pid: u32,
    target_kib: u64,
    within: Duration,
) -> anyhow::Result<(u64, Option<Duration>)> {
    let start = tokio::time::Instant::now();
    let mut lowest = rss_kib(pid)?;
    loop {
        if lowest <= target_kib {
            return Ok((lowest, Some(start.elapsed())));
        }
        if start.elapsed() >= within {
            return Ok((lowest, None));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        lowest = lowest.min(rss_kib(pid)?);
    }
}
