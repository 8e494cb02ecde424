//! What only the Redis limiter faces: Redis dying or hanging, replicas dying, keys left
//! behind, secrets in errors.

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use limiter::{CallError, CapKey, Holder, Limiter, LimiterConfig, ReserveError, RunId, RunRef};
use test_support::redis::RedisServer;

mod common;

/// The shared test timings, with a short Redis timeout so that a hung server shows quickly.
fn config() -> LimiterConfig {
    LimiterConfig {
        redis_timeout: Duration::from_millis(300),
        ..common::config()
    }
}

/// A fresh Redis server and one limiter on it.
fn redis_and_limiter() -> (RedisServer, Limiter) {
    let redis = RedisServer::start();
    let l = Limiter::redis(&redis.url(), config()).unwrap();
    (redis, l)
}

/// Both a reservation and a call (waiting up to `wait`) fail closed as unavailable.
async fn assert_refused_as_unavailable(l: &Limiter, k: &CapKey, wait: Duration) {
    assert!(matches!(
        l.reserve(k).await,
        Err(ReserveError::Unavailable(_))
    ));
    assert!(matches!(
        l.acquire_call(k, wait).await,
        Err(CallError::Unavailable(_))
    ));
}

fn key() -> CapKey {
    CapKey::new("user-1", Some("ws-1"))
}

const MINUTE: Duration = Duration::from_secs(60);

/// Retries `f` until it succeeds or `within` passes; returns how long it took.
async fn eventually<T, E: std::fmt::Debug, F: std::future::Future<Output = Result<T, E>>>(
    within: Duration,
    mut f: impl FnMut() -> F,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return (v, start.elapsed()),
            Err(e) if start.elapsed() > within => panic!("still failing after {within:?}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn free_calls(l: &Limiter, k: &CapKey) -> usize {
    let mut held = Vec::new();
    while let Ok(p) = l.acquire_call(k, Duration::ZERO).await {
        held.push(p);
    }
    held.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_fails_closed_and_everything_recovers_without_restart() {
    let (mut redis, l) = redis_and_limiter();
    let k = key();
    l.reserve(&k)
        .await
        .unwrap()
        .commit(RunRef::new("forge", "r0"), MINUTE)
        .await
        .unwrap();
    // Live holders across the outage: a reservation and two calls.
    let reservation = l.reserve(&k).await.unwrap();
    let calls = [
        l.acquire_call(&k, Duration::ZERO).await.unwrap(),
        l.acquire_call(&k, Duration::ZERO).await.unwrap(),
    ];

    // Every replica has seen Redis's epoch within a heartbeat of starting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    let t = Instant::now();
    match l.reserve(&k).await {
        Err(ReserveError::Unavailable(e)) => {
            assert!(e.to_string().starts_with("limiter unavailable"))
        }
        other => panic!("expected LimiterUnavailable, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "failed closed in {:?}",
        t.elapsed()
    );
    for _ in 0..3 {
        assert_refused_as_unavailable(&l, &k, Duration::from_secs(5)).await;
    }
    assert!(l.check().await.is_err());
    assert!(l.active_runs(&k).await.is_err());
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "every call failed fast: {:?}",
        t.elapsed()
    );

    redis.restart(); // empty: nothing was saved
    let (_, took) = eventually(Duration::from_secs(5), || l.check()).await;
    assert!(took < Duration::from_secs(3), "recovered in {took:?}");
    // Within a heartbeat, live holders are counted again, and the committed run was written
    // back from this replica's ledger.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let active = l.active_runs(&k).await.unwrap();
    let mut holders: Vec<String> = active.iter().map(|p| format!("{:?}", p.holder)).collect();
    holders.sort();
    assert_eq!(holders.len(), 2, "{holders:?}");
    assert!(
        holders[0].contains("r0") && holders[1] == "Starting",
        "{holders:?}"
    );
    assert_eq!(
        free_calls(&l, &k).await,
        3,
        "the two live calls still hold places"
    );
    // And the cap is exact again.
    let mut held = Vec::new();
    while let Ok(r) = l.reserve(&k).await {
        held.push(r);
    }
    assert_eq!(held.len(), 3);
    for r in held {
        r.cancel().await.unwrap();
    }
    reservation.cancel().await.unwrap();
    drop(calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_a_redis_that_forgot_them_and_the_cap_holds_meanwhile() {
    let mut redis = RedisServer::start();
    // Two replicas, each with runs of the same key.
    let a = Limiter::redis(&redis.url(), config()).unwrap();
    let b = Limiter::redis(&redis.url(), config()).unwrap();
    let k = key();
    for (i, l) in [&a, &a, &a, &b, &b].into_iter().enumerate() {
        let r = l.reserve(&k).await.unwrap();
        r.commit(RunRef::new("forge", format!("r{i}")), MINUTE)
            .await
            .unwrap();
    }
    b.release_run(&k, &RunId::new("r4")).await.unwrap();
    let r = b.reserve(&k).await.unwrap();
    r.commit_unknown(MINUTE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    redis.restart(); // empty
    // Until every replica has written its runs back, nothing is granted; then the cap is
    // full with exactly the runs that were there.
    let started = Instant::now();
    let mut refusals = 0;
    let refusal = loop {
        match a.reserve(&k).await {
            Err(ReserveError::Unavailable(e)) => {
                refusals += 1;
                assert!(started.elapsed() < Duration::from_secs(5), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(ReserveError::Full(refusal)) => break refusal,
            Ok(_) => panic!("granted a 6th place after Redis forgot the runs"),
        }
    };
    assert!(refusals > 0, "the recovery window refused reserves");
    let mut runs: Vec<String> = refusal.runs().map(|r| r.id.to_string()).collect();
    runs.sort();
    assert_eq!(runs, ["r0", "r1", "r2", "r3"]);
    assert_eq!(
        refusal
            .active
            .iter()
            .filter(|p| p.holder == Holder::Unknown)
            .count(),
        1
    );
    // Released runs are not written back, and releases keep working.
    assert!(b.release_run(&k, &RunId::new("r3")).await.unwrap());
    common::assert_place_free(&a, &k, "releases keep working").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out_instead_of_hanging_calls() {
    let (redis, l) = redis_and_limiter();
    let k = key();
    l.check().await.unwrap();
    redis.pause();
    let t = Instant::now();
    assert_refused_as_unavailable(&l, &k, Duration::from_secs(10)).await;
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    redis.resume();
    eventually(Duration::from_secs(5), || l.check()).await;
    common::assert_place_free(&l, &k, "a place is free").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_during_an_outage_lands_when_redis_answers_again() {
    let (redis, l) = redis_and_limiter();
    let k = key();
    let r = l.reserve(&k).await.unwrap();
    redis.pause();
    let run = RunRef::new("workflow", "wr-1").with_parent("wf-1");
    assert!(r.commit(run.clone(), MINUTE).await.is_err());
    redis.resume();
    let (active, _) = eventually(Duration::from_secs(3), || async {
        let active = l.active_runs(&k).await.map_err(|e| e.to_string())?;
        match active.first().map(|p| &p.holder) {
            Some(Holder::Run { .. }) => Ok(active),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].holder.run(), Some(&run));
    assert!(active[0].expires_in > Duration::from_secs(50));
}

/// The runtime of a replica that a test kills by shutting it down.
fn replica_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A replica whose runtime dies without releasing anything (its heartbeats stop, its drops
/// never run): simulated by shutting down the runtime that owns its limiter and tasks.
fn dead_replica(url: String, calls: usize, reserve: bool) {
    let runtime = replica_runtime();
    let held = runtime.block_on(async move {
        let l = Limiter::redis(&url, config()).unwrap();
        let mut permits = Vec::new();
        for _ in 0..calls {
            permits.push(l.acquire_call(&key(), Duration::ZERO).await.unwrap());
        }
        let reservation = if reserve {
            Some(l.reserve(&key()).await.unwrap())
        } else {
            None
        };
        // Alive for three leases: the heartbeat must keep everything.
        tokio::time::sleep(Duration::from_millis(2700)).await;
        (l, permits, reservation)
    });
    runtime.shutdown_background();
    // Dropped after their tasks are gone: nothing is released.
    std::mem::forget(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_dies_frees_its_places_within_the_lease() {
    let redis = RedisServer::start();
    let url = redis.url();
    let survivor = Limiter::redis(&url, config()).unwrap();
    let k = key();
    survivor
        .reserve(&k)
        .await
        .unwrap()
        .commit(RunRef::new("forge", "kept"), MINUTE)
        .await
        .unwrap();

    let replica = std::thread::spawn(move || dead_replica(url, 5, true));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Past a whole lease, the live replica's heartbeats still hold every place.
    assert!(matches!(
        survivor.acquire_call(&k, Duration::ZERO).await,
        Err(CallError::QueueTimeout(_))
    ));
    assert_eq!(survivor.active_runs(&k).await.unwrap().len(), 2);
    replica.join().unwrap();
    let died = Instant::now();

    // A waiter gets in once the dead replica's lease runs out, not before, not much after.
    let permit = survivor
        .acquire_call(&k, Duration::from_secs(5))
        .await
        .unwrap();
    let waited = died.elapsed();
    assert!(
        waited > Duration::from_millis(300) && waited < Duration::from_millis(1800),
        "call place freed {waited:?} after the replica died (lease 900ms)"
    );
    drop(permit);
    // The release is sent by the permit's lease task, just after the drop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(free_calls(&survivor, &k).await, 5);
    // The dead replica's reservation is gone; the committed run of the survivor stays.
    let active = survivor.active_runs(&k).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].holder.run().map(|r| r.id.as_str()), Some("kept"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_waiter_stops_blocking_the_queue_within_its_ticket_lease() {
    let redis = RedisServer::start();
    let url = redis.url();
    let one = LimiterConfig {
        max_calls_in_flight: 1,
        ..config()
    };
    let survivor = Limiter::redis(&url, one.clone()).unwrap();
    let k = key();
    let holder = survivor.acquire_call(&k, Duration::ZERO).await.unwrap();

    // Another replica queues a waiter, then dies with it.
    let replica = std::thread::spawn(move || {
        let runtime = replica_runtime();
        let held = runtime.block_on(async move {
            let l = Limiter::redis(&url, one).unwrap();
            let waiting = {
                let l = l.clone();
                tokio::spawn(async move { l.acquire_call(&key(), Duration::from_secs(30)).await })
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
            (l, waiting)
        });
        runtime.shutdown_background();
        std::mem::forget(held);
    });
    replica.join().unwrap();

    let waiter = common::spawn_waiter(&survivor, &k, Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lag = common::admission_lag(holder, waiter, "admitted once the dead ticket expired").await;
    // The dead ticket was first in line, so the place waited for it (fairness), but only
    // until its lease (900ms) ran out.
    assert!(
        lag > Duration::from_millis(300) && lag < Duration::from_millis(1500),
        "admitted {lag:?} after the release"
    );
}

/// Run only as a child process by `a_sigkilled_process_frees_its_places_within_the_lease`.
#[tokio::test]
#[ignore = "child process of another test"]
async fn holder_process() {
    let Ok(url) = std::env::var("LIMITER_HOLDER_URL") else {
        return;
    };
    let l = Limiter::redis(&url, config()).unwrap();
    let mut permits = Vec::new();
    for _ in 0..5 {
        permits.push(l.acquire_call(&key(), Duration::ZERO).await.unwrap());
    }
    let _reservation = l.reserve(&key()).await.unwrap();
    println!("HOLDING");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_process_frees_its_places_within_the_lease() {
    let redis = RedisServer::start();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "holder_process", "--ignored", "--nocapture"])
        .env("LIMITER_HOLDER_URL", redis.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("HOLDING"))
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .unwrap()
            .unwrap(),
        "holder process never held its places"
    );
    let l = Limiter::redis(&redis.url(), config()).unwrap();
    let k = key();
    assert!(l.acquire_call(&k, Duration::ZERO).await.is_err());
    assert_eq!(l.active_runs(&k).await.unwrap()[0].holder, Holder::Starting);

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed = Instant::now();
    let permit = l.acquire_call(&k, Duration::from_secs(5)).await.unwrap();
    assert!(
        killed.elapsed() < Duration::from_millis(1800),
        "{:?}",
        killed.elapsed()
    );
    drop(permit);
    let (_, _) = eventually(Duration::from_secs(2), || async {
        let n = l.active_runs(&k).await.map_err(|e| e.to_string())?.len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} places"))
        }
    })
    .await;
    assert!(killed.elapsed() < Duration::from_millis(2000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_namespaced_expire_and_vanish_when_empty() {
    let (redis, l) = redis_and_limiter();
    let mut raw = redis.inspect().await;
    let k = key();
    let r = l.reserve(&k).await.unwrap();
    r.commit(RunRef::new("forge", "r1"), MINUTE).await.unwrap();
    let permit = l.acquire_call(&k, Duration::ZERO).await.unwrap();

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for name in &keys {
        if matches!(
            name.as_str(),
            "layer-mcp:cap:epoch" | "layer-mcp:cap:recovering"
        ) {
            // Shared, one each, with a TTL of at most a day.
            let ttl: i64 = redis::cmd("PTTL")
                .arg(name)
                .query_async(&mut raw)
                .await
                .unwrap();
            assert!(ttl > 0 && ttl <= 24 * 3600 * 1000, "{name} has ttl {ttl}");
            continue;
        }
        assert!(name.starts_with("layer-mcp:cap:{"), "{name}");
        assert!(
            !name.contains("user-1") && !name.contains("ws-1"),
            "no identifiers: {name}"
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(name)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 61_000 + 60_000, "{name} has ttl {ttl}");
    }

    drop(permit);
    assert!(l.release_run(&k, &RunId::new("r1")).await.unwrap());
    let (_, _) = eventually(Duration::from_secs(2), || async {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("layer-mcp:cap:{*")
            .query_async(&mut raw.clone())
            .await
            .map_err(|e| e.to_string())?;
        if keys.is_empty() {
            Ok(())
        } else {
            Err(format!("{keys:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_loaded_again_after_redis_forgets_them() {
    let (redis, l) = redis_and_limiter();
    let mut raw = redis.inspect().await;
    let k = key();
    common::assert_place_free(&l, &k, "a place is free").await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    common::assert_place_free(&l, &k, "a place is free").await;
    drop(l.acquire_call(&k, Duration::ZERO).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_errors_or_debug_output() {
    let bad = Limiter::redis("redis://:hunter2@127.0.0.1:notaport/", config()).unwrap_err();
    assert!(!format!("{bad} {bad:?}").contains("hunter2"));

    // A closed port: every error mentions the fault, never the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let l = Limiter::redis(&format!("redis://:hunter2@127.0.0.1:{port}/"), config()).unwrap();
    assert!(!format!("{l:?}").contains("hunter2"));
    let e = l.reserve(&key()).await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains("hunter2") && !text.contains(&port.to_string()),
        "{text}"
    );
}
