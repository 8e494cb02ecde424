//! The in-process limiter: exact for one replica, nothing shared.
//!
//! Run places live in a map under a mutex (held for microseconds, never across an await).
//! Calls in flight use one Tokio semaphore per key: its queue is FIFO and a dropped `acquire`
//! future leaves it at once, which is exactly the fair queue the limiter promises. Call places
//! need no lease here: the permit's `Drop` always runs unless the process dies, and then the
//! counts die with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::LimiterConfig;
use crate::decision::{Decision, refusal};
use crate::error::{QueueTimeout, Refusal};
use crate::types::{ActivePlace, CapKey, Holder, PlaceId, RunId};

pub(crate) struct Local {
    config: LimiterConfig,
    runs: Mutex<HashMap<CapKey, Vec<Place>>>,
    calls: Mutex<HashMap<CapKey, Arc<Semaphore>>>,
}

struct Place {
    id: PlaceId,
    holder: Holder,
    expires_at: Instant,
}

/// A poisoned mutex only means another thread panicked mid-update of plain data; the maps
/// stay consistent at every step, so keep going rather than panic in a server path.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Local {
    pub(crate) fn new(config: LimiterConfig) -> Local {
        Local {
            config,
            runs: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn config(&self) -> &LimiterConfig {
        &self.config
    }

    /// Runs `f` on the key's live places, after dropping the expired ones; forgets the key
    /// when nothing is left.
    fn with_places<R>(&self, key: &CapKey, f: impl FnOnce(&mut Vec<Place>, Instant) -> R) -> R {
        let now = Instant::now();
        let mut runs = lock(&self.runs);
        let places = runs.entry(key.clone()).or_default();
        places.retain(|p| p.expires_at > now);
        let out = f(places, now);
        if places.is_empty() {
            runs.remove(key);
        }
        out
    }

    pub(crate) fn reserve(self: &Arc<Self>, key: &CapKey) -> Result<LocalReservation, Refusal> {
        let limit = self.config.max_active_runs;
        let id = PlaceId::random();
        self.with_places(key, |places, now| {
            if places.len() >= limit as usize {
                return Err(refusal(limit, snapshot(places, now), &self.config));
            }
            // No heartbeat in process: the reservation lives as long as its owner, so it is
            // held for the safe (long) lease; deciding or dropping sets the real one.
            places.push(Place {
                id: id.clone(),
                holder: Holder::Starting,
                expires_at: now + self.config.run_lease,
            });
            Ok(())
        })?;
        Ok(LocalReservation {
            local: Arc::clone(self),
            key: key.clone(),
            id,
            decided: false,
        })
    }

    fn decide(&self, key: &CapKey, id: &PlaceId, decision: Decision) {
        self.with_places(key, |places, now| {
            let Some(i) = places.iter().position(|p| &p.id == id) else {
                // Expired (only after a whole run lease); re-adding as a run would be right
                // too, but a reservation cannot outlive its owner that long in process.
                if let Decision::Commit(run, lease) = decision {
                    places.retain(|p| p.holder.run().map(|r| &r.id) != Some(&run.id));
                    places.push(Place {
                        id: id.clone(),
                        holder: Holder::Run { run },
                        expires_at: now + lease,
                    });
                }
                return;
            };
            match decision {
                Decision::Cancel => {
                    places.remove(i);
                }
                Decision::Unknown(lease) => {
                    places[i].holder = Holder::Unknown;
                    places[i].expires_at = now + lease;
                }
                Decision::Commit(run, lease) => {
                    // One run holds one place, even if it is committed twice.
                    let run_id = run.id.clone();
                    places[i].holder = Holder::Run { run };
                    places[i].expires_at = now + lease;
                    places
                        .retain(|p| &p.id == id || p.holder.run().map(|r| &r.id) != Some(&run_id));
                }
            }
        })
    }

    pub(crate) fn active_runs(&self, key: &CapKey) -> Vec<ActivePlace> {
        self.with_places(key, |places, now| snapshot(places, now))
    }

    pub(crate) fn release_run(&self, key: &CapKey, run: &RunId) -> bool {
        self.with_places(key, |places, _| {
            let before = places.len();
            places.retain(|p| p.holder.run().map(|r| &r.id) != Some(run));
            places.len() != before
        })
    }

    pub(crate) fn touch_run(&self, key: &CapKey, run: &RunId, lease: Duration) -> bool {
        self.with_places(key, |places, now| {
            let mut found = false;
            for p in places.iter_mut() {
                if p.holder.run().map(|r| &r.id) == Some(run) {
                    p.expires_at = now + lease;
                    found = true;
                }
            }
            found
        })
    }

    pub(crate) async fn acquire_call(
        self: &Arc<Self>,
        key: &CapKey,
        max_wait: Duration,
    ) -> Result<LocalPermit, QueueTimeout> {
        let semaphore = {
            let mut calls = lock(&self.calls);
            Arc::clone(calls.entry(key.clone()).or_insert_with(|| {
                Arc::new(Semaphore::new(self.config.max_calls_in_flight as usize))
            }))
        };
        // However the wait ends (admitted, timed out, or the future dropped), an idle key is
        // forgotten on the way out.
        let sweep = IdleSweep {
            local: self,
            key,
            semaphore: Some(Arc::clone(&semaphore)),
        };
        let started = Instant::now();
        let acquired = tokio::time::timeout(max_wait, semaphore.acquire_owned()).await;
        let out = match acquired {
            Ok(Ok(permit)) => Ok(LocalPermit {
                permit: Some(permit),
                key: key.clone(),
                local: Arc::clone(self),
            }),
            // The semaphore is never closed; treat it like a timeout if it ever were.
            Ok(Err(_)) | Err(_) => Err(QueueTimeout {
                limit: self.config.max_calls_in_flight,
                waited: started.elapsed(),
            }),
        };
        drop(sweep);
        out
    }

    /// Drops a key's semaphore once nobody holds or waits on it, so idle keys cost nothing.
    fn forget_idle(&self, key: &CapKey) {
        let mut calls = lock(&self.calls);
        if calls.get(key).is_some_and(|s| Arc::strong_count(s) == 1) {
            calls.remove(key);
        }
    }
}

fn snapshot(places: &[Place], now: Instant) -> Vec<ActivePlace> {
    places
        .iter()
        .map(|p| ActivePlace {
            place: p.id.clone(),
            holder: p.holder.clone(),
            expires_in: p.expires_at.saturating_duration_since(now),
        })
        .collect()
}

struct IdleSweep<'a> {
    local: &'a Local,
    key: &'a CapKey,
    semaphore: Option<Arc<Semaphore>>,
}

impl Drop for IdleSweep<'_> {
    fn drop(&mut self) {
        drop(self.semaphore.take());
        self.local.forget_idle(self.key);
    }
}

/// An undecided in-process reservation; dropping it keeps the place as an unknown run.
pub(crate) struct LocalReservation {
    local: Arc<Local>,
    key: CapKey,
    id: PlaceId,
    decided: bool,
}

impl LocalReservation {
    pub(crate) fn id(&self) -> &PlaceId {
        &self.id
    }

    pub(crate) fn decide(mut self, decision: Decision) {
        self.decided = true;
        self.local.decide(&self.key, &self.id, decision);
    }
}

impl Drop for LocalReservation {
    fn drop(&mut self) {
        if !self.decided {
            let lease = self.local.config.run_lease;
            self.local
                .decide(&self.key, &self.id, Decision::Unknown(lease));
        }
    }
}

/// A call place in process; dropping it frees the place and wakes the next waiter.
pub(crate) struct LocalPermit {
    permit: Option<OwnedSemaphorePermit>,
    key: CapKey,
    local: Arc<Local>,
}

impl Drop for LocalPermit {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.local.forget_idle(&self.key);
    }
}
