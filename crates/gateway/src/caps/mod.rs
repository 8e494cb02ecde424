//! The per-user caps, in front of Layer: at most 5 runs in progress and at most 5
//! calls in flight per (user, workspace). The counting itself is the `limiter` crate's
//! (in process, or in Redis for several replicas); this module decides what the gateway does
//! with its answers, and [`crate::upstream::Upstream::admit`] calls it for every tool call.
//!
//! - **Calls in flight**: every upstream call holds a call place for the (user, workspace),
//!   or for the user alone when it names no workspace; more wait in a fair queue for
//!   `call_queue_wait`, then `RATE_LIMITED`. A waiting call whose client cancels or
//!   disconnects leaves the queue at once. When Redis is away, calls are counted in this
//!   process instead (so reads go on, each replica still bounding its own load).
//! - **Active runs**: an execute reserves a run place before anything reaches Layer. Accepted:
//!   the place belongs to the run. Refused by Layer (4xx): freed. Outcome unknown (timeout,
//!   lost connection, 5xx after retries): kept for `run_lease` (over-counting a run that may
//!   exist is safe, under-counting is not). A poll that sees the run over, or a successful
//!   cancel, frees it; a poll that sees it running renews its lease. When Redis is away,
//!   executes fail closed.
//! - **Before refusing** an execute, places still being started (another execute waiting for
//!   Layer's answer) are given up to `run_check_timeout` to become runs or free, then the
//!   runs believed active are checked with Layer (with the caller's credential); finished
//!   ones are freed and the reserve is tried once more.

mod check;
mod config;
pub mod refusal;

use layer_api::{AuthedClient, WorkspaceId};
use limiter::{
    CallError, CallPermit, CapKey, Holder, Limiter, LimiterUnavailable, Reservation, ReserveError,
    RunId, RunRef,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use config::{CapsConfig, LimiterStore};

use crate::auth::UserId;
use crate::cancel::Cancellation;
use crate::errors::ToolError;

/// How often a refused execute looks again while places are being started.
const STARTING_POLL: Duration = Duration::from_millis(50);

/// The caps of one gateway process. Cheap to share behind an `Arc`.
pub struct Caps {
    limiter: Limiter,
    /// Counts calls in this process while the shared store is away.
    fallback: Limiter,
    config: CapsConfig,
    /// Whether calls are being counted by `fallback` (for logging the change once).
    degraded: AtomicBool,
}

impl std::fmt::Debug for Caps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caps")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// The caps could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("limiter: {0}")]
pub struct CapsError(#[from] limiter::ConfigError);

impl Caps {
    /// Builds the limiter the configuration names. The Redis one connects lazily (the gateway
    /// starts while Redis is away, and fails closed until it is back); must be called inside
    /// a Tokio runtime. `tls` applies to a `rediss://` limiter URL.
    pub fn from_config(config: &CapsConfig, tls: &redis_conn::Tls) -> Result<Caps, CapsError> {
        let limiter_config = config.limiter_config();
        let limiter = match &config.store {
            LimiterStore::InProcess => Limiter::in_process(limiter_config.clone())?,
            LimiterStore::Redis(url) => {
                Limiter::redis_with_tls(url.expose(), tls, limiter_config.clone())?
            }
        };
        Ok(Caps {
            limiter,
            fallback: Limiter::in_process(limiter_config)?,
            config: config.clone(),
            degraded: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &CapsConfig {
        &self.config
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// `in-process` or `redis`, for `/readyz` and the logs.
    pub fn store_name(&self) -> &'static str {
        match self.config.store {
            LimiterStore::InProcess => "in-process",
            LimiterStore::Redis(_) => "redis",
        }
    }

    /// Whether the store answers (always, in process).
    pub async fn check(&self) -> Result<(), LimiterUnavailable> {
        self.limiter.check().await
    }

    /// The key of a user in a workspace (or of the user alone).
    pub fn key(user: &UserId, workspace: Option<WorkspaceId>) -> CapKey {
        CapKey::new(user.as_str(), workspace.map(|w| w.to_string()).as_deref())
    }

    /// Waits for a call place (see the module docs).
    pub async fn call_place(
        &self,
        key: &CapKey,
        cancel: &Cancellation,
    ) -> Result<CallPermit, ToolError> {
        let wait = self.config.call_queue_wait;
        let started = tokio::time::Instant::now();
        let shared = tokio::select! {
            result = self.limiter.acquire_call(key, wait) => result,
            _ = cancel.any() => return Err(refusal::abandoned()),
        };
        let error = match shared {
            Ok(permit) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("limiter store reachable again: calls are counted in it");
                }
                return Ok(permit);
            }
            Err(CallError::QueueTimeout(timeout)) => return Err(refusal::queue_full(&timeout)),
            Err(CallError::Unavailable(error)) => error,
        };
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                reason = error.reason(),
                "limiter store unreachable: calls in flight are counted per process until it is back; executes are refused"
            );
        }
        let left = wait.saturating_sub(started.elapsed());
        let local = tokio::select! {
            result = self.fallback.acquire_call(key, left) => result,
            _ = cancel.any() => return Err(refusal::abandoned()),
        };
        match local {
            Ok(permit) => Ok(permit),
            Err(CallError::QueueTimeout(timeout)) => Err(refusal::queue_full(&timeout)),
            Err(CallError::Unavailable(error)) => Err(refusal::unavailable(&error)),
        }
    }

    /// Reserves a run place before an execute reaches Layer. When every place is held, asks
    /// Layer about the runs holding them (with `client`, the caller's), frees the finished
    /// ones and tries once more; then refuses with `RATE_LIMITED`.
    pub async fn reserve_run(
        &self,
        key: &CapKey,
        client: &AuthedClient<'_>,
        workspace: WorkspaceId,
    ) -> Result<Reservation, ToolError> {
        let mut refusal = match self.limiter.reserve(key).await {
            Ok(reservation) => return Ok(reservation),
            Err(ReserveError::Unavailable(error)) => return Err(refusal::unavailable(&error)),
            Err(ReserveError::Full(refusal)) => refusal,
        };
        // A place being started is an execute Layer is answering right now: it becomes a
        // run (which the refusal can then name) or frees (and this call gets it). Wait for
        // those, briefly, rather than answer with runs nobody can poll yet.
        let deadline = tokio::time::Instant::now() + self.config.run_check_timeout;
        while refusal.active.iter().any(|p| p.holder == Holder::Starting)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(STARTING_POLL).await;
            refusal = match self.limiter.reserve(key).await {
                Ok(reservation) => return Ok(reservation),
                Err(ReserveError::Unavailable(error)) => return Err(refusal::unavailable(&error)),
                Err(ReserveError::Full(refusal)) => refusal,
            };
        }
        let report = check::check_runs(
            client,
            workspace,
            &refusal.active,
            self.config.run_check_timeout,
        )
        .await;
        for run in &report.finished {
            if let Err(error) = self.limiter.release_run(key, run).await {
                return Err(refusal::unavailable(&error));
            }
        }
        if !report.finished.is_empty() {
            tracing::debug!(
                freed = report.finished.len(),
                "finished runs freed before an execute"
            );
        }
        match self.limiter.reserve(key).await {
            Ok(reservation) => Ok(reservation),
            Err(ReserveError::Unavailable(error)) => Err(refusal::unavailable(&error)),
            Err(ReserveError::Full(refusal)) => {
                tracing::info!(
                    active = refusal.active.len(),
                    "execute refused: active-run cap reached"
                );
                Err(refusal::runs_full(&refusal, report.next_poll))
            }
        }
    }

    /// Layer accepted the run: the place is the run's.
    pub async fn run_started(&self, reservation: Reservation, run: RunRef) {
        let id = run.id.clone();
        if let Err(error) = reservation.commit(run, self.config.run_lease).await {
            // The limiter keeps the place as a reservation and retries the commit.
            tracing::warn!(run = %id, reason = error.reason(), "could not record a started run yet");
        }
    }

    /// Layer refused the execute: nothing started, the place is free again.
    pub async fn run_refused(&self, reservation: Reservation) {
        if let Err(error) = reservation.cancel().await {
            tracing::debug!(
                reason = error.reason(),
                "could not free a refused reservation; its lease will"
            );
        }
    }

    /// The execute's outcome is unknown: a run may exist, keep the place for the run lease.
    pub async fn run_unknown(&self, reservation: Reservation) {
        if let Err(error) = reservation.commit_unknown(self.config.run_lease).await {
            tracing::warn!(
                reason = error.reason(),
                "could not record an unknown execute outcome yet"
            );
        }
    }

    /// The run is over (terminal status seen, cancelled, or unknown to Layer).
    pub async fn run_ended(&self, key: &CapKey, run: &str) {
        match self.limiter.release_run(key, &RunId::new(run)).await {
            Ok(true) => tracing::debug!(run, "run place freed"),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(
                    run,
                    reason = error.reason(),
                    "could not free a finished run's place; the next refused execute will"
                )
            }
        }
    }

    /// The run was seen still running: extend its lease.
    pub async fn run_active(&self, key: &CapKey, run: &str) {
        if let Err(error) = self
            .limiter
            .touch_run(key, &RunId::new(run), self.config.run_lease)
            .await
        {
            tracing::debug!(
                run,
                reason = error.reason(),
                "could not renew a run's lease"
            );
        }
    }

    /// Layer itself refused an execute with 429 (runs started elsewhere, e.g. in Layer's app,
    /// count there too): the same error, naming the runs this gateway counts.
    pub async fn explain_layer_refusal(&self, key: &CapKey, mut error: ToolError) -> ToolError {
        let Ok(places) = self.limiter.active_runs(key).await else {
            return error;
        };
        let runs: Vec<_> = places
            .iter()
            .filter_map(|p| p.holder.run())
            .map(refusal::active_run)
            .collect();
        if !runs.is_empty() {
            let listed: Vec<String> = runs.iter().map(refusal::describe).collect();
            error.message = format!(
                "{} Runs this gateway started for you here: {}.",
                error.message,
                listed.join("; ")
            );
        }
        error.with_active_runs(runs)
    }
}
