//! Surviving a Redis that forgot everything (restarted without persistence, failed over to an
//! empty replica, flushed).
//!
//! Live holders re-add their own leases on the next heartbeat, but a committed run has no
//! live holder: without help, a restarted Redis would forget the runs in progress and admit
//! N more, and Layer would see twice the cap. So each replica keeps a **ledger** of the run
//! places it wrote (until released or expired), and Redis keeps an **epoch**, a random id
//! written by whoever first finds it missing. Each replica remembers the epoch it last wrote
//! its ledger under. A replica that finds a *different* epoch knows Redis was reset: it opens
//! a **recovery window** (unless one is open) during which every `reserve` refuses (fails
//! closed, as in an outage), and writes its ledger back. Every replica looks at the epoch on
//! each heartbeat (and at once when a `reserve` finds it stale), so within the window, three
//! heartbeats plus a Redis timeout, every live replica has written its runs back.
//!
//! A brand-new replica (no epoch seen yet) never opens the window, so a fresh deployment
//! starts at once. Left open: a replica that died with Redis takes its runs with it, and a
//! replica that starts during the window of a reset may reserve before an older replica has
//! noticed the reset (within one heartbeat).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::Value;
use tokio::time::Instant;

use crate::config::LimiterConfig;
use crate::types::PlaceId;

use super::scripts;
use super::{Conn, PREFIX, ms};

/// The keys of the epoch and of the recovery window.
pub(crate) fn epoch_keys() -> [String; 2] {
    [format!("{PREFIX}:epoch"), format!("{PREFIX}:recovering")]
}

/// How long `reserve` refuses after Redis is found empty.
pub(crate) fn recovery_window(config: &LimiterConfig) -> Duration {
    config.heartbeat_interval * 3 + config.redis_timeout
}

/// How long an epoch outlives the last replica that saw it (renewed on every heartbeat).
pub(crate) const EPOCH_TTL: Duration = Duration::from_secs(24 * 3600);

/// A run place this replica wrote, as the `commit` script takes it.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) keys: [String; 3],
    /// Empty for a run whose id is unknown.
    pub(crate) run_id: String,
    pub(crate) holder: String,
    pub(crate) expires_at: Instant,
}

/// The run places this replica wrote and has not seen released.
#[derive(Default)]
pub(crate) struct Ledger {
    places: Mutex<HashMap<PlaceId, Entry>>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, HashMap<PlaceId, Entry>> {
        self.places.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a place written to Redis; a run holds one place, so an older place of the same
    /// run is forgotten (the `commit` script moved it).
    pub(crate) fn record(&self, place: &PlaceId, entry: Entry) {
        let mut places = self.lock();
        let now = Instant::now();
        places.retain(|id, e| {
            e.expires_at > now
                && !(id != place
                    && !entry.run_id.is_empty()
                    && e.run_id == entry.run_id
                    && e.keys == entry.keys)
        });
        places.insert(place.clone(), entry);
    }

    pub(crate) fn forget_place(&self, place: &PlaceId) {
        self.lock().remove(place);
    }

    pub(crate) fn forget_run(&self, keys: &[String; 3], run_id: &str) {
        self.lock()
            .retain(|_, e| !(e.run_id == run_id && &e.keys == keys));
    }

    pub(crate) fn touch_run(&self, keys: &[String; 3], run_id: &str, lease: Duration) {
        let until = Instant::now() + lease;
        for e in self.lock().values_mut() {
            if e.run_id == run_id && &e.keys == keys {
                e.expires_at = until;
            }
        }
    }

    /// The places still within their lease, with the lease left.
    fn live(&self) -> Vec<(PlaceId, Entry, Duration)> {
        let now = Instant::now();
        let mut places = self.lock();
        places.retain(|_, e| e.expires_at > now);
        places
            .iter()
            .map(|(id, e)| (id.clone(), e.clone(), e.expires_at - now))
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The epoch this replica last wrote its ledger under, shared by `reserve` and the watcher.
#[derive(Default)]
pub(crate) struct EpochState {
    seen: Mutex<Option<String>>,
    /// Wakes the watcher before its next heartbeat (a `reserve` found this replica stale).
    kick: tokio::sync::Notify,
}

impl EpochState {
    /// The `known epoch` argument of the scripts ('' when none was seen yet).
    pub(crate) fn known(&self) -> String {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }

    fn set(&self, epoch: String) {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(epoch);
    }

    pub(crate) fn kick(&self) {
        self.kick.notify_one();
    }
}

/// Every heartbeat (or when kicked): makes sure Redis has an epoch (renewing its TTL), and
/// writes the ledger back when the epoch is not the one this replica last wrote it under.
pub(crate) async fn watch_epoch(
    redis: Conn,
    ledger: Arc<Ledger>,
    epoch: Arc<EpochState>,
    config: LimiterConfig,
) {
    let keys = epoch_keys();
    let mut beat = tokio::time::interval(config.heartbeat_interval);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = beat.tick() => {}
            _ = epoch.kick.notified() => {}
        }
        let known = epoch.known();
        let args = [
            uuid::Uuid::new_v4().simple().to_string(),
            ms(recovery_window(&config)),
            ms(EPOCH_TTL),
            known.clone(),
        ];
        let Ok(Value::BulkString(current)) = redis.eval(&scripts::EPOCH, &keys, &args).await else {
            continue;
        };
        let current = String::from_utf8_lossy(&current).into_owned();
        if current == known {
            continue;
        }
        if !known.is_empty() {
            tracing::warn!("limiter: redis lost its state; writing this replica's runs back");
        }
        if reassert(&redis, &ledger).await {
            epoch.set(current);
        }
    }
}

/// Writes every live ledger place back; true when all were written.
async fn reassert(redis: &Conn, ledger: &Ledger) -> bool {
    let mut ok = true;
    for (place, entry, left) in ledger.live() {
        let args = [
            place.to_string(),
            entry.run_id.clone(),
            entry.holder.clone(),
            ms(left),
        ];
        if redis
            .eval(&scripts::COMMIT, &entry.keys, &args)
            .await
            .is_err()
        {
            ok = false;
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(keys: &str, run: &str, secs: u64) -> Entry {
        Entry {
            keys: [keys.to_owned(), keys.to_owned(), keys.to_owned()],
            run_id: run.to_owned(),
            holder: "h".to_owned(),
            expires_at: Instant::now() + Duration::from_secs(secs),
        }
    }

    #[tokio::test]
    async fn one_place_per_run_and_forgetting_by_run_or_place() {
        let ledger = Ledger::default();
        ledger.record(&PlaceId::new("p1"), entry("k", "r1", 60));
        ledger.record(&PlaceId::new("p2"), entry("k", "r1", 60));
        assert_eq!(ledger.len(), 1, "the run moved to p2");
        ledger.record(&PlaceId::new("p3"), entry("k", "", 60));
        ledger.record(&PlaceId::new("p4"), entry("k", "", 60));
        ledger.record(&PlaceId::new("p5"), entry("other", "r1", 60));
        assert_eq!(ledger.len(), 4, "unknown runs and other keys are separate");
        ledger.forget_run(&entry("k", "", 0).keys, "r1");
        assert_eq!(ledger.len(), 3);
        ledger.forget_place(&PlaceId::new("p3"));
        assert_eq!(ledger.len(), 2);
        ledger.record(&PlaceId::new("p6"), entry("k", "r2", 0));
        assert_eq!(
            ledger.live().len(),
            2,
            "expired places are not written back"
        );
    }
}
