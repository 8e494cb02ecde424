//! What both limiter test files share.

use std::time::{Duration, Instant};

use limiter::{CallError, CallPermit, CapKey, Limiter, LimiterConfig};
use tokio::task::JoinHandle;

/// What a waiting call ends with, and when.
pub type Waiter = JoinHandle<(Instant, Result<CallPermit, CallError>)>;

/// Short leases and polls, so that expiries and heartbeats show within a test.
pub fn config() -> LimiterConfig {
    LimiterConfig {
        reservation_lease: Duration::from_millis(900),
        call_lease: Duration::from_millis(900),
        heartbeat_interval: Duration::from_millis(150),
        ticket_lease: Duration::from_millis(900),
        queue_poll_interval: Duration::from_millis(100),
        ..LimiterConfig::default()
    }
}

/// A call on `l` that waits up to `wait` for a place, in a task of its own.
pub fn spawn_waiter(l: &Limiter, k: &CapKey, wait: Duration) -> Waiter {
    let l = l.clone();
    let k = k.clone();
    tokio::spawn(async move {
        let p = l.acquire_call(&k, wait).await;
        (Instant::now(), p)
    })
}

/// Frees a place by dropping `holder`; how long after that `waiter` was admitted
/// (`admitted` says what a refusal means).
pub async fn admission_lag<H>(holder: H, waiter: Waiter, admitted: &str) -> Duration {
    let freed = Instant::now();
    drop(holder);
    let (at, permit) = waiter.await.unwrap();
    drop(permit.expect(admitted));
    at - freed
}

/// A place is free: a reservation succeeds (`free` says why it should) and is given back.
pub async fn assert_place_free(l: &Limiter, k: &CapKey, free: &str) {
    l.reserve(k).await.expect(free).cancel().await.unwrap();
}
