//! The numbers: caps, waits and lease lengths, with the product's defaults.

use std::time::Duration;

use crate::error::ConfigError;

/// Every number the limiter uses. `Default` gives the product's promise (5 active runs and 5
/// calls in flight per key) and leases sized for a gateway whose upstream calls take seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Places for active runs per key (N).
    pub max_active_runs: u32,
    /// Places for calls in flight per key (M).
    pub max_calls_in_flight: u32,
    /// How long a call waits in the queue when the caller does not say (`acquire_call` takes
    /// its own `max_wait`; this is the value a caller should pass by default).
    pub queue_wait: Duration,
    /// Lease of a reservation between `reserve` and the caller's decision. Renewed by a
    /// heartbeat while the `Reservation` is alive, so it only bounds how long a dead replica's
    /// reservation blocks a place.
    pub reservation_lease: Duration,
    /// Default lease of a committed run (and of a reservation dropped without a decision):
    /// how long a run holds its place when nobody reports it finished.
    pub run_lease: Duration,
    /// Lease of a call in flight. Renewed by a heartbeat while the `CallPermit` is alive, so
    /// a replica that dies frees its call places within this time.
    pub call_lease: Duration,
    /// How often reservation and call leases are renewed. At most a third of the shorter
    /// lease, so two missed beats do not lose a place.
    pub heartbeat_interval: Duration,
    /// Lease of a waiting ticket in the Redis queue; a waiter renews it on every poll, so a
    /// dead waiter stops blocking the queue after this time.
    pub ticket_lease: Duration,
    /// How often a waiter asks Redis again when no wake-up arrives (the fallback when a
    /// pub/sub message is lost or pub/sub is off).
    pub queue_poll_interval: Duration,
    /// Wake waiters through Redis pub/sub when a call place frees (else they rely on polling).
    pub pubsub_wake: bool,
    /// Upper bound of any single Redis round trip; past it the operation fails with
    /// `LimiterUnavailable` (a hung Redis must not hang tool calls).
    pub redis_timeout: Duration,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            max_active_runs: 5,
            max_calls_in_flight: 5,
            queue_wait: Duration::from_secs(30),
            reservation_lease: Duration::from_secs(10),
            run_lease: Duration::from_secs(30 * 60),
            call_lease: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(2),
            ticket_lease: Duration::from_secs(3),
            queue_poll_interval: Duration::from_millis(500),
            pubsub_wake: true,
            redis_timeout: Duration::from_secs(1),
        }
    }
}

impl LimiterConfig {
    /// Checks that the numbers make sense together; the constructors call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |why: &str| Err(ConfigError::Invalid(why.to_owned()));
        if self.max_active_runs == 0 || self.max_calls_in_flight == 0 {
            return bad("max_active_runs and max_calls_in_flight must be at least 1");
        }
        let ms = |d: Duration| d.as_millis();
        if ms(self.heartbeat_interval) == 0
            || ms(self.queue_poll_interval) == 0
            || ms(self.redis_timeout) == 0
        {
            return bad(
                "heartbeat_interval, queue_poll_interval and redis_timeout must be at least 1ms",
            );
        }
        let shortest = self.reservation_lease.min(self.call_lease);
        if self.heartbeat_interval * 3 > shortest {
            return bad(
                "heartbeat_interval must be at most a third of reservation_lease and call_lease",
            );
        }
        if self.queue_poll_interval * 3 > self.ticket_lease {
            return bad("queue_poll_interval must be at most a third of ticket_lease");
        }
        if self.run_lease < self.reservation_lease {
            return bad("run_lease must be at least reservation_lease");
        }
        // Leases travel to Redis in whole milliseconds; keep them far from overflow.
        let longest = [
            self.reservation_lease,
            self.run_lease,
            self.call_lease,
            self.ticket_lease,
            self.queue_wait,
        ]
        .into_iter()
        .max()
        .unwrap_or_default();
        if longest > MAX_LEASE {
            return bad("leases and queue_wait must be at most 30 days");
        }
        Ok(())
    }
}

/// Longest lease accepted anywhere (also for `commit`'s own lease argument).
pub(crate) const MAX_LEASE: Duration = Duration::from_secs(30 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_product() {
        let c = LimiterConfig::default();
        c.validate().unwrap();
        assert_eq!((c.max_active_runs, c.max_calls_in_flight), (5, 5));
    }

    #[test]
    fn rejects_a_heartbeat_too_slow_for_its_lease() {
        let c = LimiterConfig {
            heartbeat_interval: Duration::from_secs(5),
            ..LimiterConfig::default()
        };
        assert!(c.validate().is_err());
        let c = LimiterConfig {
            max_active_runs: 0,
            ..LimiterConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
