//! The caps' settings: their numbers and where they are counted, with the product's defaults.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use limiter::LimiterConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::RedisUrl;
use crate::settings::{secs, text};

/// Where the counts live. As a setting (`limiter`): `memory` (also `in-process`, `local`) or a
/// Redis URL; `redis` (the shared `redis_url`) is resolved by the loader, which knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimiterStore {
    /// In this process: exact for a single replica (the default).
    InProcess,
    /// In Redis: exact across every replica using the same Redis.
    Redis(RedisUrl),
}

impl FromStr for LimiterStore {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "memory" | "in-process" | "local" => Ok(LimiterStore::InProcess),
            "redis" => Err(
                "`redis` needs `redis_url` (LAYER_MCP_REDIS_URL or --redis-url); or give the URL itself"
                    .into(),
            ),
            _ if s.contains("://") => s
                .trim()
                .parse()
                .map(LimiterStore::Redis)
                .map_err(|e: redis_conn::UrlError| e.to_string()),
            _ => Err("must be `memory`, `redis` (use redis_url) or a redis:// URL".into()),
        }
    }
}

impl fmt::Display for LimiterStore {
    /// `memory`, or the Redis URL redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimiterStore::InProcess => f.write_str("memory"),
            LimiterStore::Redis(url) => write!(f, "{url}"),
        }
    }
}

/// The per-user caps: every number is a setting; the defaults are the product's
/// (`docs/caps.md`). Read from the same layers as the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CapsConfig {
    /// Where the per-user caps are counted: `memory` (per process: only for one replica),
    /// `redis` (the shared `redis_url`) or a Redis URL of its own.
    #[serde(rename = "limiter", with = "text")]
    #[schemars(
        with = "String",
        extend(
            "x-flag" = "--limiter",
            "x-secret" = true,
            "x-default" = "`redis` with `redis_url`, else `memory`"
        )
    )]
    pub store: LimiterStore,
    /// Runs in progress per user per workspace (`execute_forge` and `execute_workflow`
    /// together).
    pub max_active_runs: u32,
    /// Layer calls at once per user per workspace (per user for calls that name no
    /// workspace).
    pub max_calls_in_flight: u32,
    /// How long a call waits for a call place before `RATE_LIMITED`.
    #[serde(rename = "call_queue_wait_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub call_queue_wait: Duration,
    /// How long a run holds its place when nobody sees it finish (each poll that sees it
    /// still running renews it); also how long a run whose start is unknown (the execute
    /// timed out) holds one.
    #[serde(rename = "run_lease_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub run_lease: Duration,
    /// How long a place being started survives a replica that died while starting it.
    #[serde(rename = "reservation_lease_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub reservation_lease: Duration,
    /// How long a call place survives a replica that died during the call.
    #[serde(rename = "call_lease_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub call_lease: Duration,
    /// How long the gateway asks Layer about the active runs before refusing an execute (runs
    /// it has no answer for keep their places).
    #[serde(rename = "run_check_timeout_secs", with = "secs")]
    #[schemars(with = "u64")]
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
