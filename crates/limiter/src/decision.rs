//! What becomes of a reservation, shared by both implementations.

use std::time::Duration;

use crate::config::LimiterConfig;
use crate::error::Refusal;
use crate::types::{ActivePlace, Holder, RunRef};

/// The caller's decision about a reserved place.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    /// The run started: the place belongs to it for `lease` (or until released).
    Commit(RunRef, Duration),
    /// A run may have started: keep the place for `lease`.
    Unknown(Duration),
    /// Nothing started: free the place.
    Cancel,
}

/// The refusal for a full key: the earliest expected free is the shortest lease among places
/// held by runs. A starting place is about to become a run (or free), so when only those
/// hold places the answer is the reservation lease: ask again soon.
pub(crate) fn refusal(limit: u32, active: Vec<ActivePlace>, config: &LimiterConfig) -> Refusal {
    let runs = active
        .iter()
        .filter(|p| p.holder != Holder::Starting)
        .map(|p| p.expires_in)
        .min();
    let retry_after = runs.unwrap_or(config.reservation_lease);
    Refusal {
        limit,
        active,
        retry_after,
    }
}
