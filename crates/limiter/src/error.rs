//! What a caller is told when it does not get a place.

use std::time::Duration;

use crate::types::{ActivePlace, RunRef};

/// The shared store cannot be reached (or did not answer in time). Places are never granted
/// in this state: the limiter fails closed. The reason names the kind of fault only, never
/// the store's address or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limiter unavailable: {reason}")]
pub struct LimiterUnavailable {
    reason: String,
}

impl LimiterUnavailable {
    pub(crate) fn new(reason: impl Into<String>) -> LimiterUnavailable {
        LimiterUnavailable {
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Every active-run place of the key is held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "all {limit} active-run places are held; the earliest is expected to free in {}s",
    retry_after.as_secs()
)]
pub struct Refusal {
    /// The cap (N).
    pub limit: u32,
    /// The places held now (at least `limit` of them).
    pub active: Vec<ActivePlace>,
    /// When the earliest place is expected to free: the shortest remaining lease of a run
    /// (known or unknown); a place still starting is expected to become a run, so it counts
    /// only when nothing else holds a place.
    pub retry_after: Duration,
}

impl Refusal {
    /// The runs known by id among the holders, for the caller to poll or cancel.
    pub fn runs(&self) -> impl Iterator<Item = &RunRef> {
        self.active.iter().filter_map(|p| p.holder.run())
    }
}

/// Why `reserve` gave no place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    #[error(transparent)]
    Full(Refusal),
    #[error(transparent)]
    Unavailable(LimiterUnavailable),
}

impl From<LimiterUnavailable> for ReserveError {
    fn from(e: LimiterUnavailable) -> Self {
        ReserveError::Unavailable(e)
    }
}

/// A call waited its whole `max_wait` in the queue without getting a place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no call place freed within {}ms (at most {limit} calls in flight)", waited.as_millis())]
pub struct QueueTimeout {
    /// The cap (M).
    pub limit: u32,
    pub waited: Duration,
}

/// Why `acquire_call` gave no place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    QueueTimeout(QueueTimeout),
    #[error(transparent)]
    Unavailable(LimiterUnavailable),
}

impl From<LimiterUnavailable> for CallError {
    fn from(e: LimiterUnavailable) -> Self {
        CallError::Unavailable(e)
    }
}

/// The limiter could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid limiter configuration: {0}")]
    Invalid(String),
    /// The URL itself is not repeated: it may carry a password.
    #[error("invalid Redis URL: {0}")]
    RedisUrl(String),
}
