//! Cost of the limiter per call, as ratios against baselines measured in the same run:
//! a no-op await (what a call costs without any limiter) and, for Redis, one PING round trip
//! to the same server (the floor for anything that asks Redis).
//!
//! Also the wake-up latency of a queued call on another replica: pub/sub against polling.
//!
//! `cargo bench -p limiter` (starts its own Redis on a free loopback port).

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use limiter::{CapKey, Limiter, LimiterConfig, RunId, RunRef};
use test_support::redis::RedisServer;

/// Runs `op` `n` times (after a tenth as many warm-up runs) and returns the time per run.
async fn per_op<F, Fut>(n: u32, mut op: F) -> Duration
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..n / 10 {
        op(i).await;
    }
    let start = Instant::now();
    for i in 0..n {
        op(i).await;
    }
    start.elapsed() / n
}

#[inline(never)]
async fn noop(i: u32) {
    black_box(i);
}

fn line(name: &str, t: Duration, base: Duration, base_name: &str) {
    let ratio = t.as_secs_f64() / base.as_secs_f64().max(1e-12);
    println!(
        "{name:<44} {:>10.2} µs/op  {ratio:>10.1}x {base_name}",
        t.as_secs_f64() * 1e6
    );
}

async fn reserve_release(l: &Limiter, k: &CapKey, i: u32) {
    let r = l.reserve(k).await.expect("place");
    let id = format!("run-{i}");
    r.commit(RunRef::new("forge", id.clone()), Duration::from_secs(60))
        .await
        .expect("commit");
    l.release_run(k, &RunId::new(id)).await.expect("release");
}

async fn reserve_cancel(l: &Limiter, k: &CapKey) {
    l.reserve(k)
        .await
        .expect("place")
        .cancel()
        .await
        .expect("cancel");
}

async fn acquire_drop(l: &Limiter, k: &CapKey) {
    drop(
        l.acquire_call(k, Duration::from_secs(5))
            .await
            .expect("call place"),
    );
}

/// Median time from one replica freeing the only call place to a waiter on another replica
/// getting it.
async fn handoff(
    holder_side: &Limiter,
    waiter_side: &Limiter,
    k: &CapKey,
    rounds: usize,
) -> Duration {
    let mut lags = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let held = holder_side
            .acquire_call(k, Duration::from_secs(5))
            .await
            .expect("place");
        let waiter = {
            let l = waiter_side.clone();
            let k = k.clone();
            tokio::spawn(async move {
                let p = l
                    .acquire_call(&k, Duration::from_secs(5))
                    .await
                    .expect("handed over");
                (Instant::now(), p)
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await; // the waiter is queued
        let freed = Instant::now();
        drop(held);
        let (admitted, p) = waiter.await.expect("waiter");
        lags.push(admitted - freed);
        drop(p);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    lags.sort();
    lags[lags.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let redis = RedisServer::start();
        let config = LimiterConfig::default();
        let k = CapKey::new("bench-user", Some("bench-ws"));

        let noop_t = per_op(200_000, noop).await;
        line("baseline: no-op await", noop_t, noop_t, "no-op");

        let local = Limiter::in_process(config.clone()).expect("config");
        let t = per_op(20_000, |i| reserve_release(&local, &k, i)).await;
        line("in-process reserve+commit+release_run", t, noop_t, "no-op");
        let t = per_op(20_000, |_| reserve_cancel(&local, &k)).await;
        line("in-process reserve+cancel", t, noop_t, "no-op");
        let t = per_op(20_000, |_| acquire_drop(&local, &k)).await;
        line("in-process acquire_call+drop", t, noop_t, "no-op");

        let raw = redis.inspect().await;
        let ping_t = per_op(2_000, |_| {
            let mut c = raw.clone();
            async move {
                let ping = redis::cmd("PING");
                let _: String = ping.query_async(&mut c).await.expect("ping");
            }
        })
        .await;
        line("baseline: redis PING round trip", ping_t, noop_t, "no-op");

        let remote = Limiter::redis(&redis.url(), config.clone()).expect("config");
        let t = per_op(2_000, |i| reserve_release(&remote, &k, i)).await;
        line("redis reserve+commit+release_run", t, noop_t, "no-op");
        line("  (same, against one PING)", t, ping_t, "PING");
        let t = per_op(2_000, |_| reserve_cancel(&remote, &k)).await;
        line("redis reserve+cancel", t, noop_t, "no-op");
        line("  (same, against one PING)", t, ping_t, "PING");
        let t = per_op(2_000, |_| acquire_drop(&remote, &k)).await;
        line("redis acquire_call+drop", t, noop_t, "no-op");
        line("  (same, against one PING)", t, ping_t, "PING");

        // Queue wake-up across replicas: pub/sub against polling alone.
        let one = LimiterConfig {
            max_calls_in_flight: 1,
            ..config.clone()
        };
        let holder = Limiter::redis(&redis.url(), one.clone()).expect("config");
        let waiter_pubsub = Limiter::redis(&redis.url(), one.clone()).expect("config");
        let waiter_poll = Limiter::redis(
            &redis.url(),
            LimiterConfig {
                pubsub_wake: false,
                ..one.clone()
            },
        )
        .expect("config");
        tokio::time::sleep(Duration::from_millis(200)).await; // subscriptions up
        let qk = CapKey::new("bench-user", Some("queue"));
        let pubsub_t = handoff(&holder, &waiter_pubsub, &qk, 30).await;
        let poll_t = handoff(&holder, &waiter_poll, &qk, 10).await;
        line(
            "queue hand-off to another replica, pub/sub",
            pubsub_t,
            ping_t,
            "PING",
        );
        line(
            &format!(
                "queue hand-off, polling only ({}ms)",
                one.queue_poll_interval.as_millis()
            ),
            poll_t,
            pubsub_t,
            "pub/sub",
        );
    });
}
