//! The public handle and the two things it hands out: reservations and call permits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{LimiterConfig, MAX_LEASE};
use crate::decision::Decision;
use crate::error::{CallError, ConfigError, LimiterUnavailable, ReserveError};
use crate::local::{Local, LocalPermit, LocalReservation};
use crate::redis::{RedisBackend, RedisPermit, RedisReservation};
use crate::types::{ActivePlace, CapKey, PlaceId, RunId, RunRef};

/// Counts places per key: active runs (at most N) and calls in flight (at most M).
/// Cheap to clone; clones share the counts.
#[derive(Clone)]
pub struct Limiter {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(Arc<Local>),
    Redis(Arc<RedisBackend>),
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the Redis URL: it may carry a password.
        let kind = match &self.backend {
            Backend::Local(_) => "in-process",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("Limiter")
            .field("backend", &kind)
            .field("config", self.config())
            .finish()
    }
}

impl Limiter {
    /// The in-process limiter: exact for a single replica.
    pub fn in_process(config: LimiterConfig) -> Result<Limiter, ConfigError> {
        config.validate()?;
        Ok(Limiter {
            backend: Backend::Local(Arc::new(Local::new(config))),
        })
    }

    /// The Redis limiter: exact across every replica using the same Redis. Connects lazily
    /// (a gateway starts even while Redis is away, and fails closed until it is back); use
    /// [`Limiter::check`] to see whether Redis answers. Must be called inside a Tokio
    /// runtime. Errors never repeat the URL.
    pub fn redis(url: &str, config: LimiterConfig) -> Result<Limiter, ConfigError> {
        Self::redis_with_tls(url, &redis_conn::Tls::default(), config)
    }

    /// The same, with TLS settings for a `rediss://` URL (a private CA).
    pub fn redis_with_tls(
        url: &str,
        tls: &redis_conn::Tls,
        config: LimiterConfig,
    ) -> Result<Limiter, ConfigError> {
        config.validate()?;
        Ok(Limiter {
            backend: Backend::Redis(Arc::new(RedisBackend::connect(url, tls, config)?)),
        })
    }

    pub fn config(&self) -> &LimiterConfig {
        match &self.backend {
            Backend::Local(l) => l.config(),
            Backend::Redis(r) => r.config(),
        }
    }

    /// Whether the shared store answers and grants places (always true in process); false
    /// also while Redis recovers from losing its state. For readiness probes.
    pub async fn check(&self) -> Result<(), LimiterUnavailable> {
        match &self.backend {
            Backend::Local(_) => Ok(()),
            Backend::Redis(r) => r.check().await,
        }
    }

    /// Takes an active-run place for `key` before the caller starts a run upstream.
    ///
    /// The place is a short lease kept alive while the [`Reservation`] exists. Decide with
    /// [`Reservation::commit`], [`Reservation::commit_unknown`] or [`Reservation::cancel`];
    /// dropping it undecided keeps the place as an unknown run for `run_lease` (a run may
    /// have started: over-counting is safe, under-counting is not).
    pub async fn reserve(&self, key: &CapKey) -> Result<Reservation, ReserveError> {
        let inner = match &self.backend {
            Backend::Local(l) => {
                ReservationInner::Local(l.reserve(key).map_err(ReserveError::Full)?)
            }
            Backend::Redis(r) => ReservationInner::Redis(r.reserve(key).await?),
        };
        Ok(Reservation {
            key: key.clone(),
            inner,
        })
    }

    /// The places of `key` held now (expired ones are gone).
    pub async fn active_runs(&self, key: &CapKey) -> Result<Vec<ActivePlace>, LimiterUnavailable> {
        match &self.backend {
            Backend::Local(l) => Ok(l.active_runs(key)),
            Backend::Redis(r) => r.active_runs(key).await,
        }
    }

    /// Frees the place of run `run` (it finished, or was cancelled). Idempotent: returns
    /// whether the run held a place.
    pub async fn release_run(&self, key: &CapKey, run: &RunId) -> Result<bool, LimiterUnavailable> {
        match &self.backend {
            Backend::Local(l) => Ok(l.release_run(key, run)),
            Backend::Redis(r) => r.release_run(key, run).await,
        }
    }

    /// Extends the lease of run `run` to `lease` from now (the caller saw it still running).
    /// Returns whether the run held a place.
    pub async fn touch_run(
        &self,
        key: &CapKey,
        run: &RunId,
        lease: Duration,
    ) -> Result<bool, LimiterUnavailable> {
        let lease = lease.min(MAX_LEASE);
        match &self.backend {
            Backend::Local(l) => Ok(l.touch_run(key, run, lease)),
            Backend::Redis(r) => r.touch_run(key, run, lease).await,
        }
    }

    /// Takes a call place for `key`, waiting in a fair FIFO queue for at most `max_wait`.
    /// Dropping the returned future leaves the queue at once; dropping the permit frees
    /// the place.
    pub async fn acquire_call(
        &self,
        key: &CapKey,
        max_wait: Duration,
    ) -> Result<CallPermit, CallError> {
        let max_wait = max_wait.min(MAX_LEASE);
        let inner = match &self.backend {
            Backend::Local(l) => PermitInner::Local(
                l.acquire_call(key, max_wait)
                    .await
                    .map_err(CallError::QueueTimeout)?,
            ),
            Backend::Redis(r) => PermitInner::Redis(r.acquire_call(key, max_wait).await?),
        };
        Ok(CallPermit {
            key: key.clone(),
            _inner: inner,
        })
    }
}

/// An active-run place taken before a run starts. Must be decided; dropping it undecided
/// keeps the place as an unknown run for the configured `run_lease`.
#[must_use = "decide with commit, commit_unknown or cancel; dropping keeps the place for run_lease"]
pub struct Reservation {
    key: CapKey,
    inner: ReservationInner,
}

enum ReservationInner {
    Local(LocalReservation),
    Redis(RedisReservation),
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("key", &self.key)
            .field("id", self.id())
            .finish()
    }
}

impl Reservation {
    pub fn key(&self) -> &CapKey {
        &self.key
    }

    /// The place's id (kept by the run once committed).
    pub fn id(&self) -> &PlaceId {
        match &self.inner {
            ReservationInner::Local(r) => r.id(),
            ReservationInner::Redis(r) => r.id(),
        }
    }

    async fn decide(self, decision: Decision) -> Result<(), LimiterUnavailable> {
        match self.inner {
            ReservationInner::Local(r) => {
                r.decide(decision);
                Ok(())
            }
            ReservationInner::Redis(r) => r.decide(decision).await,
        }
    }

    /// The run started: the place belongs to `run` until [`Limiter::release_run`] or until
    /// `lease` passes. On error (Redis away) the place is still held as a reservation and
    /// the commit is retried in the background until Redis answers or `lease` passes.
    pub async fn commit(self, run: RunRef, lease: Duration) -> Result<(), LimiterUnavailable> {
        self.decide(Decision::Commit(run, lease.min(MAX_LEASE)))
            .await
    }

    /// The upstream outcome is unknown (e.g. it timed out; a run may exist): keep the place
    /// for `lease`. It cannot be released by run id; it frees when the lease passes.
    pub async fn commit_unknown(self, lease: Duration) -> Result<(), LimiterUnavailable> {
        self.decide(Decision::Unknown(lease.min(MAX_LEASE))).await
    }

    /// Nothing started upstream (it refused): free the place now. On error the place frees
    /// when the reservation lease passes.
    pub async fn cancel(self) -> Result<(), LimiterUnavailable> {
        self.decide(Decision::Cancel).await
    }
}

/// A call place, held while the call runs (its lease is renewed in the background).
/// Dropping it frees the place and admits the next waiter.
#[must_use = "the call place is freed as soon as the permit is dropped"]
pub struct CallPermit {
    key: CapKey,
    _inner: PermitInner,
}

enum PermitInner {
    Local(#[allow(dead_code)] LocalPermit),
    Redis(#[allow(dead_code)] RedisPermit),
}

impl fmt::Debug for CallPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallPermit")
            .field("key", &self.key)
            .finish()
    }
}

impl CallPermit {
    pub fn key(&self) -> &CapKey {
        &self.key
    }
}
