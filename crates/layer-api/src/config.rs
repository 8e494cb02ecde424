//! How a [`crate::LayerClient`] is built: where it talks to, how long it waits, how it retries.

use std::time::Duration;

use url::Url;

/// Layer's production v1 API.
pub const DEFAULT_BASE_URL: &str = "https://api.app.layer.ai/api/v1";

/// Everything a [`crate::LayerClient`] needs. Start from [`ClientConfig::default`] and
/// override what differs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base of the v1 API, e.g. `https://api.app.layer.ai/api/v1` (a trailing `/` is fine).
    pub base_url: Url,
    /// Sent as `User-Agent`, e.g. `layer-mcp-gateway/0.1.0`.
    pub user_agent: String,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for a whole API call, response body included, per attempt.
    pub request_timeout: Duration,
    /// Longest wait for one step of a storage upload (the `PUT` of the bytes included).
    pub upload_timeout: Duration,
    /// Idle pooled connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// When and how often a failed call is tried again.
    pub retry: RetryPolicy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: default_base_url(),
            user_agent: concat!("layer-api-rust/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            upload_timeout: Duration::from_secs(300),
            pool_max_idle_per_host: 32,
            retry: RetryPolicy::default(),
        }
    }
}

#[allow(clippy::expect_used)] // a constant literal; covered by a unit test
fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("DEFAULT_BASE_URL is a valid URL")
}

impl ClientConfig {
    /// The default configuration pointed at another base URL (the simulator, a staging API).
    pub fn with_base_url(base_url: Url) -> Self {
        Self {
            base_url,
            ..Self::default()
        }
    }
}

/// Retries with jittered exponential backoff. Only safe calls are retried: `GET`s, and `POST`s
/// carrying an `Idempotency-Key` (which the client adds to every mutating `POST`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; `1` turns retries off.
    pub max_attempts: u32,
    /// The delay before the first retry, before jitter; it doubles with each retry.
    pub base_backoff: Duration,
    /// No computed delay exceeds this.
    pub max_backoff: Duration,
    /// A `429` is retried only when it carries `Retry-After` no longer than this (and a
    /// `503` with a longer `Retry-After` is not retried). Zero never retries a `429`.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// One attempt only.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (1 for the first retry): "full jitter", a random
    /// point in `[0, min(max_backoff, base_backoff * 2^(retry-1))]`, so many clients that failed
    /// together do not come back together.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(20);
        let ceiling = self
            .base_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_base_url_is_production_v1() {
        assert_eq!(
            ClientConfig::default().base_url.as_str(),
            "https://api.app.layer.ai/api/v1"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            max_retry_after: Duration::ZERO,
        };
        for _ in 0..200 {
            assert!(policy.backoff(1) <= Duration::from_millis(100));
            assert!(policy.backoff(2) <= Duration::from_millis(200));
            assert!(policy.backoff(3) <= Duration::from_millis(350));
            assert!(policy.backoff(30) <= Duration::from_millis(350));
        }
        // Jitter: over many draws the delays are not all equal.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(3)).collect();
        assert!(draws.len() > 1);
    }
}
