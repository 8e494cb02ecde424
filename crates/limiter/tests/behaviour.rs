//! The behaviour every limiter promises, run against both implementations: in process, and
//! Redis (a real Redis server per test, several independent `Limiter`s as replicas).

// Test code: a failed expectation should panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use limiter::{
    CallError, CapKey, Holder, Limiter, LimiterConfig, Reservation, ReserveError, RunId, RunRef,
};
use test_support::redis::RedisServer;

mod common;
use common::{admission_lag, assert_place_free, config, spawn_waiter};

/// Where the counts live for one test. A test asks for its limiters once.
enum Env {
    InProcess,
    Redis(RedisServer),
}

impl Env {
    fn in_process() -> Env {
        Env::InProcess
    }

    fn redis() -> Env {
        Env::Redis(RedisServer::start())
    }

    /// `n` replicas sharing the counts: clones of one limiter in process, independent
    /// limiters (own connections, own heartbeats) on one Redis.
    fn replicas(&self, config: &LimiterConfig, n: usize) -> Vec<Limiter> {
        match self {
            Env::InProcess => vec![Limiter::in_process(config.clone()).unwrap(); n],
            Env::Redis(r) => (0..n)
                .map(|_| Limiter::redis(&r.url(), config.clone()).unwrap())
                .collect(),
        }
    }

    fn limiter(&self, config: &LimiterConfig) -> Limiter {
        self.replicas(config, 1).remove(0)
    }
}

fn key(user: &str, ws: &str) -> CapKey {
    CapKey::new(user, Some(ws))
}

fn run(i: usize) -> RunRef {
    RunRef::new("forge", format!("run-{i}"))
}

const MINUTE: Duration = Duration::from_secs(60);

async fn fill(l: &Limiter, k: &CapKey, n: usize) {
    for i in 0..n {
        let r = l.reserve(k).await.expect("a free place");
        r.commit(run(i), MINUTE).await.unwrap();
    }
}

fn refused(result: Result<Reservation, ReserveError>) -> limiter::Refusal {
    match result {
        Err(ReserveError::Full(refusal)) => refusal,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(r) => panic!("expected a refusal, got place {:?}", r.id()),
    }
}

/// 50 reserves at once, spread over `replicas`: exactly N succeed.
async fn exactly_n_of_50(env: &Env, replicas: usize) {
    let cfg = config();
    let limiters = env.replicas(&cfg, replicas);
    let k = key("u1", "w1");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let l = limiters[i % replicas].clone();
            let k = k.clone();
            tokio::spawn(async move { l.reserve(&k).await })
        })
        .collect();
    let mut held = Vec::new();
    let mut refusals = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => held.push(r),
            Err(ReserveError::Full(refusal)) => {
                assert_eq!(refusal.active.len(), 5, "a refusal lists every holder");
                refusals += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((held.len(), refusals), (5, 45));
    for r in held {
        r.cancel().await.unwrap();
    }
    // Cancelled places are free again, for exactly N more.
    let mut again = Vec::new();
    for i in 0..6 {
        match limiters[i % replicas].reserve(&k).await {
            Ok(r) => again.push(r),
            Err(e) => assert!(i == 5, "place {i} refused: {e}"),
        }
    }
    assert_eq!(again.len(), 5);
    for r in again {
        r.cancel().await.unwrap();
    }
}

async fn fifty_concurrent_reserves_admit_exactly_n(env: Env) {
    exactly_n_of_50(&env, 1).await;
}

async fn fifty_concurrent_reserves_on_three_replicas_admit_exactly_n(env: Env) {
    exactly_n_of_50(&env, 3).await;
}

async fn other_workspaces_and_users_are_unaffected(env: Env) {
    let l = env.limiter(&config());
    fill(&l, &key("alice", "w1"), 5).await;
    refused(l.reserve(&key("alice", "w1")).await);
    // Same user elsewhere, another user here, and the user without a workspace.
    for k in [
        key("alice", "w2"),
        key("bob", "w1"),
        CapKey::new("alice", None),
    ] {
        let r = l.reserve(&k).await.unwrap_or_else(|e| panic!("{k}: {e}"));
        r.cancel().await.unwrap();
    }
}

async fn refusal_names_the_runs_and_when_to_retry(env: Env) {
    let l = env.limiter(&config());
    let k = key("u", "w");
    for i in 0..4 {
        l.reserve(&k)
            .await
            .unwrap()
            .commit(run(i), MINUTE)
            .await
            .unwrap();
    }
    let short = RunRef::new("workflow", "run-wf").with_parent("wf-7");
    let r = l.reserve(&k).await.unwrap();
    r.commit(short.clone(), Duration::from_secs(20))
        .await
        .unwrap();

    let refusal = refused(l.reserve(&k).await);
    assert_eq!(refusal.limit, 5);
    let mut ids: Vec<_> = refusal.runs().map(|r| r.id.as_str().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["run-0", "run-1", "run-2", "run-3", "run-wf"]);
    assert!(
        refusal.runs().any(|r| r == &short),
        "parent kept for polling"
    );
    assert!(
        refusal.retry_after <= Duration::from_secs(20)
            && refusal.retry_after > Duration::from_secs(15),
        "retry_after {:?} is the shortest lease",
        refusal.retry_after
    );
    let text = refusal.to_string();
    assert!(text.contains("all 5 active-run places are held"), "{text}");
}

async fn release_frees_a_place_and_is_idempotent(env: Env) {
    let replicas = env.replicas(&config(), 2);
    let k = key("u", "w");
    fill(&replicas[0], &k, 5).await;
    refused(replicas[1].reserve(&k).await);
    assert!(
        replicas[1]
            .release_run(&k, &RunId::new("run-3"))
            .await
            .unwrap()
    );
    assert!(
        !replicas[0]
            .release_run(&k, &RunId::new("run-3"))
            .await
            .unwrap(),
        "second release"
    );
    assert!(
        !replicas[0]
            .release_run(&k, &RunId::new("never"))
            .await
            .unwrap(),
        "unknown run"
    );
    let active = replicas[0].active_runs(&k).await.unwrap();
    assert_eq!(active.len(), 4);
    assert!(
        active
            .iter()
            .all(|p| p.holder.run().is_some_and(|r| r.id.as_str() != "run-3"))
    );
    let r = replicas[1].reserve(&k).await.expect("the released place");
    r.commit(run(9), MINUTE).await.unwrap();
    refused(replicas[0].reserve(&k).await);
}

async fn a_run_committed_twice_holds_one_place(env: Env) {
    let l = env.limiter(&config());
    let k = key("u", "w");
    for _ in 0..2 {
        l.reserve(&k)
            .await
            .unwrap()
            .commit(run(1), MINUTE)
            .await
            .unwrap();
    }
    assert_eq!(l.active_runs(&k).await.unwrap().len(), 1);
    assert!(l.release_run(&k, &RunId::new("run-1")).await.unwrap());
    assert!(l.active_runs(&k).await.unwrap().is_empty());
}

async fn cancel_frees_the_place(env: Env) {
    let l = env.limiter(&config());
    let k = key("u", "w");
    fill(&l, &k, 4).await;
    let r = l.reserve(&k).await.unwrap();
    refused(l.reserve(&k).await);
    r.cancel().await.unwrap();
    assert_place_free(&l, &k, "cancelled place is free").await;
}

async fn unknown_outcome_keeps_the_place_for_its_lease(env: Env) {
    let l = env.limiter(&config());
    let k = key("u", "w");
    fill(&l, &k, 4).await;
    let r = l.reserve(&k).await.unwrap();
    r.commit_unknown(Duration::from_millis(1200)).await.unwrap();
    let refusal = refused(l.reserve(&k).await);
    assert_eq!(
        refusal.runs().count(),
        4,
        "the unknown one has no id to name"
    );
    assert!(refusal.active.iter().any(|p| p.holder == Holder::Unknown));
    assert!(refusal.retry_after <= Duration::from_millis(1200));
    // Not released by anything but its lease.
    tokio::time::sleep(Duration::from_millis(700)).await;
    refused(l.reserve(&k).await);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_place_free(&l, &k, "lease over").await;
}

async fn dropping_an_undecided_reservation_keeps_the_place(env: Env) {
    let cfg = LimiterConfig {
        run_lease: Duration::from_millis(2000),
        ..config()
    };
    let l = env.limiter(&cfg);
    let k = key("u", "w");
    fill(&l, &k, 4).await;
    let r = l.reserve(&k).await.unwrap();
    drop(r);
    // Still held (as a run that may exist) well past the reservation lease...
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let refusal = refused(l.reserve(&k).await);
    assert!(refusal.active.iter().any(|p| p.holder == Holder::Unknown));
    // ...and freed by the run lease.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_place_free(&l, &k, "run lease over").await;
}

async fn an_undecided_reservation_is_held_while_its_owner_lives(env: Env) {
    let l = env.limiter(&config());
    let k = key("u", "w");
    fill(&l, &k, 4).await;
    let r = l.reserve(&k).await.unwrap();
    // Three reservation leases: the heartbeat (Redis) or the owner (in process) keeps it.
    tokio::time::sleep(Duration::from_millis(2700)).await;
    let refusal = refused(l.reserve(&k).await);
    assert!(refusal.active.iter().any(|p| p.holder == Holder::Starting));
    r.commit(run(7), MINUTE).await.unwrap();
    let active = l.active_runs(&k).await.unwrap();
    assert_eq!(active.len(), 5);
    assert!(active.iter().all(|p| p.holder.run().is_some()));
}

async fn run_leases_expire_and_can_be_extended(env: Env) {
    let l = env.limiter(&config());
    let k = key("u", "w");
    fill(&l, &k, 3).await;
    for i in [10, 11] {
        let r = l.reserve(&k).await.unwrap();
        r.commit(run(i), Duration::from_millis(600)).await.unwrap();
    }
    assert!(
        l.touch_run(&k, &RunId::new("run-11"), MINUTE)
            .await
            .unwrap()
    );
    assert!(!l.touch_run(&k, &RunId::new("nope"), MINUTE).await.unwrap());
    tokio::time::sleep(Duration::from_millis(900)).await;
    let active = l.active_runs(&k).await.unwrap();
    let mut ids: Vec<_> = active
        .iter()
        .filter_map(|p| p.holder.run())
        .map(|r| r.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["run-0", "run-1", "run-11", "run-2"]);
    assert_place_free(&l, &k, "expired place").await;
}

async fn calls_are_capped_and_a_waiter_times_out(env: Env) {
    let l = env.limiter(&config());
    let k = key("u", "w");
    let mut permits = Vec::new();
    for _ in 0..5 {
        permits.push(l.acquire_call(&k, Duration::ZERO).await.unwrap());
    }
    let t = Instant::now();
    match l.acquire_call(&k, Duration::from_millis(300)).await {
        Err(CallError::QueueTimeout(e)) => {
            assert_eq!(e.limit, 5);
            assert!(e.waited >= Duration::from_millis(300), "{e}");
        }
        other => panic!("expected a queue timeout, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_millis(1500));
    // Other keys have their own places.
    drop(
        l.acquire_call(&key("u", "w2"), Duration::ZERO)
            .await
            .unwrap(),
    );
    permits.pop();
    let p = l
        .acquire_call(&k, Duration::from_secs(2))
        .await
        .expect("a freed place");
    drop(p);
}

async fn a_waiter_gets_the_place_when_a_call_finishes(env: Env) {
    let replicas = env.replicas(&config(), 2);
    let k = key("u", "w");
    let mut permits = Vec::new();
    for _ in 0..5 {
        permits.push(replicas[0].acquire_call(&k, Duration::ZERO).await.unwrap());
    }
    let waiter = spawn_waiter(&replicas[1], &k, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!waiter.is_finished(), "the 6th call waits");
    let lag = admission_lag(permits.pop(), waiter, "admitted").await;
    assert!(
        lag < Duration::from_millis(500),
        "admitted {lag:?} after the place freed"
    );
}

async fn waiters_are_admitted_in_arrival_order(env: Env) {
    let cfg = LimiterConfig {
        max_calls_in_flight: 1,
        ..config()
    };
    let replicas = env.replicas(&cfg, 3);
    let k = key("u", "w");
    let holder = replicas[0].acquire_call(&k, Duration::ZERO).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let l = replicas[i % 3].clone();
        let k = k.clone();
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            let p = l.acquire_call(&k, Duration::from_secs(20)).await.unwrap();
            order.lock().unwrap().push(i);
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(p);
        }));
        // Arrivals well apart, so arrival order is unambiguous.
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    drop(holder);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
}

async fn a_cancelled_waiter_leaves_the_queue_at_once(env: Env) {
    // Long ticket leases and slow polling: only an immediate exit and a wake-up let the
    // next waiter in quickly.
    let cfg = LimiterConfig {
        max_calls_in_flight: 1,
        ticket_lease: Duration::from_secs(30),
        queue_poll_interval: Duration::from_secs(5),
        ..config()
    };
    let replicas = env.replicas(&cfg, 2);
    let k = key("u", "w");
    let holder = replicas[0].acquire_call(&k, Duration::ZERO).await.unwrap();
    let first = spawn_waiter(&replicas[1], &k, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = spawn_waiter(&replicas[0], &k, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.abort(); // the client went away
    assert!(first.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lag = admission_lag(holder, second, "the second waiter gets the place").await;
    assert!(
        lag < Duration::from_millis(800),
        "second waiter admitted {lag:?} after the release"
    );
}

async fn a_timed_out_waiter_leaves_the_queue(env: Env) {
    let cfg = LimiterConfig {
        max_calls_in_flight: 1,
        ticket_lease: Duration::from_secs(30),
        queue_poll_interval: Duration::from_secs(5),
        ..config()
    };
    let l = env.limiter(&cfg);
    let k = key("u", "w");
    let holder = l.acquire_call(&k, Duration::ZERO).await.unwrap();
    assert!(matches!(
        l.acquire_call(&k, Duration::from_millis(200)).await,
        Err(CallError::QueueTimeout(_))
    ));
    drop(holder);
    // Nobody is left ahead: the place is free at once, without queueing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(
        l.acquire_call(&k, Duration::ZERO)
            .await
            .expect("no stale ticket in front"),
    );
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::in_process()).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Env::redis()).await
                }
            )*
        }
    };
}

suite!(
    fifty_concurrent_reserves_admit_exactly_n,
    fifty_concurrent_reserves_on_three_replicas_admit_exactly_n,
    other_workspaces_and_users_are_unaffected,
    refusal_names_the_runs_and_when_to_retry,
    release_frees_a_place_and_is_idempotent,
    a_run_committed_twice_holds_one_place,
    cancel_frees_the_place,
    unknown_outcome_keeps_the_place_for_its_lease,
    dropping_an_undecided_reservation_keeps_the_place,
    an_undecided_reservation_is_held_while_its_owner_lives,
    run_leases_expire_and_can_be_extended,
    calls_are_capped_and_a_waiter_times_out,
    a_waiter_gets_the_place_when_a_call_finishes,
    waiters_are_admitted_in_arrival_order,
    a_cancelled_waiter_leaves_the_queue_at_once,
    a_timed_out_waiter_leaves_the_queue,
);
