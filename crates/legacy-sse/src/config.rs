//! Settings of the transport, with defaults that suit a public deployment.

use std::time::Duration;

/// How the old transport behaves. Every limit is per process (per replica).
#[derive(Debug, Clone)]
pub struct Config {
    /// The path the `endpoint` event names for POSTs, as the client must request it: the
    /// public path prefix (if the service sits under one) followed by the messages route,
    /// e.g. `/messages` or `/layer/messages`. Clients resolve it against the stream's URL.
    pub messages_path: String,
    /// A keep-alive comment is sent after this long without an event. Keep it well under
    /// the idle timeouts of proxies in front (often 60 s, some edges about 5 min).
    pub keep_alive: Duration,
    /// How many messages may wait to be written to a stream. When it is full, a new message
    /// waits up to [`Config::slow_reader_timeout`] for room; after that the client counts as
    /// not reading and its stream is closed (the session ends): a stuck client is
    /// disconnected, not buffered without bound. (The socket buffers hold more.)
    pub backlog: usize,
    /// How long a full backlog may stay full before the stream is closed. A burst from the
    /// server to a client that reads, however slowly, is not a reason to disconnect it.
    pub slow_reader_timeout: Duration,
    /// Open streams per identity. Opening one more closes that identity's oldest stream:
    /// a client that reconnects after losing its network is not locked out by its own
    /// half-dead streams, and one identity cannot hold more than this.
    pub max_streams_per_identity: usize,
    /// Open streams in this process; beyond it a new stream is refused with 503.
    pub max_sessions: usize,
    /// Largest POST body accepted; larger gets 413.
    pub max_body_bytes: usize,
    /// On shutdown, how long requests already running may take to finish (their replies
    /// are still delivered) before the streams are closed regardless.
    pub shutdown_drain: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            messages_path: "/messages".to_owned(),
            keep_alive: Duration::from_secs(15),
            backlog: 64,
            slow_reader_timeout: Duration::from_secs(10),
            max_streams_per_identity: 8,
            max_sessions: 10_000,
            max_body_bytes: 4 * 1024 * 1024,
            shutdown_drain: Duration::from_secs(10),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("legacy SSE setting `{setting}`: {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: &'static str,
}

impl Config {
    /// Checks that every setting can work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |setting, problem| Err(ConfigError { setting, problem });
        if !self.messages_path.starts_with('/') || self.messages_path.contains(['?', '#']) {
            return fail(
                "messages_path",
                "must be an absolute path without query or fragment",
            );
        }
        if self.keep_alive.is_zero() {
            return fail("keep_alive", "must be more than zero");
        }
        if self.backlog == 0 {
            return fail("backlog", "must be at least 1");
        }
        if self.slow_reader_timeout.is_zero() {
            return fail("slow_reader_timeout", "must be more than zero");
        }
        if self.max_streams_per_identity == 0 {
            return fail("max_streams_per_identity", "must be at least 1");
        }
        if self.max_sessions == 0 {
            return fail("max_sessions", "must be at least 1");
        }
        if self.max_body_bytes == 0 {
            return fail("max_body_bytes", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_named() {
        type Change = fn(&mut Config);
        let cases: [(&str, Change); 6] = [
            ("messages_path", |c| c.messages_path = "messages".into()),
            ("messages_path", |c| c.messages_path = "/m?x=1".into()),
            ("keep_alive", |c| c.keep_alive = Duration::ZERO),
            ("backlog", |c| c.backlog = 0),
            ("slow_reader_timeout", |c| {
                c.slow_reader_timeout = Duration::ZERO
            }),
            ("max_streams_per_identity", |c| {
                c.max_streams_per_identity = 0
            }),
        ];
        for (setting, change) in cases {
            let mut config = Config::default();
            change(&mut config);
            assert_eq!(config.validate().unwrap_err().setting, setting);
        }
    }
}
