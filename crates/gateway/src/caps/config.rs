//! The numbers of the caps and where they are counted, with the product's defaults.

use std::time::Duration;

use limiter::LimiterConfig;

use crate::config::RedisUrl;

/// Where the counts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimiterStore {
    /// In this process: exact for a single replica (the default).
    InProcess,
    /// In Redis: exact across every replica using the same Redis.
    Redis(RedisUrl),
}

/// Settings of the caps (issue 5). Every number is a setting; the defaults are the product's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapsConfig {
    /// `limiter` (with `redis_url`): where the counts live.
    pub store: LimiterStore,
    /// `max_active_runs`: runs in progress per user per workspace.
    pub max_active_runs: u32,
    /// `max_calls_in_flight`: upstream calls at once per user per workspace (per user for
    /// calls that name no workspace).
    pub max_calls_in_flight: u32,
    /// `call_queue_wait_secs`: how long a call waits for a call place before `RATE_LIMITED`.
    pub call_queue_wait: Duration,
    /// `run_lease_secs`: how long a run holds its place when nobody sees it finish (each poll
    /// that sees it still running renews it). Also how long a run whose start is unknown
    /// (the execute timed out) holds its place.
    pub run_lease: Duration,
    /// `reservation_lease_secs`: how long a place being started survives a replica that died
    /// while starting it.
    pub reservation_lease: Duration,
    /// `call_lease_secs`: how long a call place survives a replica that died during the call.
    pub call_lease: Duration,
    /// `run_check_timeout_secs`: how long the gateway asks Layer about the active runs before
    /// refusing an execute (runs it has no answer for keep their places).
    pub run_check_timeout: Duration,
}

impl Default for CapsConfig {
    fn default() -> Self {
        let limiter = LimiterConfig::default();
        CapsConfig {
            store: LimiterStore::InProcess,
            max_active_runs: limiter.max_active_runs,
            max_calls_in_flight: limiter.max_calls_in_flight,
            call_queue_wait: limiter.queue_wait,
            run_lease: limiter.run_lease,
            reservation_lease: limiter.reservation_lease,
            call_lease: limiter.call_lease,
            run_check_timeout: Duration::from_secs(3),
        }
    }
}

impl CapsConfig {
    /// The limiter's own configuration. Heartbeats and the queue's polling follow the leases:
    /// a heartbeat every fifth of the shorter lease (2 s with the defaults), so two missed
    /// beats never lose a place.
    pub fn limiter_config(&self) -> LimiterConfig {
        let defaults = LimiterConfig::default();
        let shortest = self.reservation_lease.min(self.call_lease);
        let heartbeat = (shortest / 5).min(defaults.heartbeat_interval);
        let ticket_lease = defaults.ticket_lease.min(shortest);
        LimiterConfig {
            max_active_runs: self.max_active_runs,
            max_calls_in_flight: self.max_calls_in_flight,
            queue_wait: self.call_queue_wait,
            reservation_lease: self.reservation_lease,
            run_lease: self.run_lease,
            call_lease: self.call_lease,
            heartbeat_interval: heartbeat,
            ticket_lease,
            queue_poll_interval: defaults.queue_poll_interval.min(ticket_lease / 3),
            ..defaults
        }
    }

    /// Checks the numbers; the error names the setting.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let at_least_one = [
            ("max_active_runs", self.max_active_runs),
            ("max_calls_in_flight", self.max_calls_in_flight),
        ];
        for (name, n) in at_least_one {
            if n == 0 {
                return Err((name, "must be at least 1".into()));
            }
        }
        let leases = [
            ("call_queue_wait_secs", self.call_queue_wait),
            ("run_lease_secs", self.run_lease),
            ("reservation_lease_secs", self.reservation_lease),
            ("call_lease_secs", self.call_lease),
            ("run_check_timeout_secs", self.run_check_timeout),
        ];
        for (name, d) in leases {
            if d < Duration::from_secs(1) {
                return Err((name, "must be at least 1 second".into()));
            }
            if d > Duration::from_secs(30 * 24 * 3600) {
                return Err((name, "must be at most 30 days".into()));
            }
        }
        if self.run_lease < self.reservation_lease {
            return Err((
                "run_lease_secs",
                "must be at least reservation_lease_secs".into(),
            ));
        }
        self.limiter_config()
            .validate()
            .map_err(|e| ("limiter", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_products_and_the_limiter_accepts_them() {
        let caps = CapsConfig::default();
        assert_eq!((caps.max_active_runs, caps.max_calls_in_flight), (5, 5));
        caps.validate().unwrap();
        let limiter = caps.limiter_config();
        assert_eq!(limiter.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(limiter, LimiterConfig::default());
    }

    #[test]
    fn short_leases_get_faster_heartbeats() {
        let caps = CapsConfig {
            call_lease: Duration::from_secs(1),
            reservation_lease: Duration::from_secs(1),
            ..CapsConfig::default()
        };
        caps.validate().unwrap();
        let limiter = caps.limiter_config();
        assert_eq!(limiter.heartbeat_interval, Duration::from_millis(200));
        assert!(limiter.validate().is_ok());
    }

    #[test]
    fn bad_numbers_name_their_setting() {
        let caps = CapsConfig {
            max_active_runs: 0,
            ..CapsConfig::default()
        };
        assert_eq!(caps.validate().unwrap_err().0, "max_active_runs");
        let caps = CapsConfig {
            run_lease: Duration::from_secs(2),
            ..CapsConfig::default()
        };
        assert_eq!(caps.validate().unwrap_err().0, "run_lease_secs");
    }
}
