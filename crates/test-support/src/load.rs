//! A closed-loop load for benchmarks: N workers, each with one call in flight at a time (as
//! an MCP client does), taking the next call from a shared counter until the total is done.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one run of [`closed_loop`] measured.
pub struct Measured {
    /// Every call's latency, sorted.
    pub latencies: Vec<Duration>,
    /// From the first call to the last answer.
    pub elapsed: Duration,
}

impl Measured {
    /// Calls per second over the run.
    pub fn per_sec(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0.5 for the median).
    pub fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        self.latencies[(last as f64 * q).round() as usize]
    }
}

/// Runs `calls` calls of `call(worker)` by `concurrency` workers.
pub async fn closed_loop<F, Fut>(calls: usize, concurrency: usize, call: F) -> Measured
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                let t = Instant::now();
                call(worker).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(calls);
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Measured { latencies, elapsed }
}
