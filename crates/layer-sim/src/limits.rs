//! The product's limits on starting a run: at most N unfinished runs per user and workspace
//! (429 with `Retry-After`), and no run whose estimate exceeds the available balance (402).

use std::time::Instant;

use crate::ids::WorkspaceId;
use crate::problem::ApiError;
use crate::state::{Inner, Sim, UserIdx};

/// Refuses a 6th unfinished run; `Retry-After` is when the earliest is expected to finish.
pub fn check_rate_limit(
    sim: &Sim,
    inner: &mut Inner,
    user: UserIdx,
    ws: WorkspaceId,
) -> Result<(), ApiError> {
    let unfinished = inner.unfinished(user, ws);
    if unfinished.len() < sim.config.max_concurrent_runs {
        return Ok(());
    }
    let now = Instant::now();
    let soonest = unfinished
        .iter()
        .map(|r| r.expected_end().saturating_duration_since(now))
        .min()
        .unwrap_or_default();
    inner.counters.rate_limited += 1;
    Err(ApiError::RateLimited {
        retry_after_secs: soonest.as_secs_f64().ceil().max(1.0) as u64,
        limit: sim.config.max_concurrent_runs,
    })
}

/// Refuses a run whose estimate exceeds what the workspace has available.
pub fn check_balance(inner: &mut Inner, ws: WorkspaceId, estimate: f64) -> Result<(), ApiError> {
    let available = inner.workspace(ws).map_or(0.0, |w| w.available());
    if estimate > available + 1e-9 {
        inner.counters.insufficient_balance += 1;
        return Err(ApiError::InsufficientBalance {
            needed: estimate,
            available,
        });
    }
    Ok(())
}
