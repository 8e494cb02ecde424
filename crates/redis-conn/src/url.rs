//! [`RedisUrl`]: a Redis URL that is checked once and shown redacted everywhere.

use std::fmt;
use std::str::FromStr;

/// Why a text is not a usable Redis URL. Never holds the text (it may carry a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a URL ({0})")]
    NotAUrl(String),
    #[error("must be a redis://, rediss:// or unix:// URL, got scheme `{0}`")]
    Scheme(String),
    #[error("must name a host")]
    NoHost,
}

/// A Redis URL (`redis://`, `rediss://`, `redis+unix://` or `unix://`). It may carry a
/// user name and password, so `Debug` and `Display` show it redacted ([`redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL itself, for the Redis client only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the connection uses TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.0
            .get(..9)
            .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
    }

    /// The URL fit for a log line or an error message.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl FromStr for RedisUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        // Never echo the value: it may hold a password.
        let url = ::url::Url::parse(text).map_err(|e| UrlError::NotAUrl(e.to_string()))?;
        if !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
            return Err(UrlError::Scheme(url.scheme().to_owned()));
        }
        if matches!(url.scheme(), "redis" | "rediss") && url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        Ok(RedisUrl(text.to_owned()))
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({})", self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` fit for an error message or a log line: user name and password become `***`, a
/// query (which may carry a password) goes; anything that does not parse as a URL with a
/// host but holds an `@` or a `?` keeps only its scheme.
pub fn redact_url(url: &str) -> String {
    match ::url::Url::parse(url) {
        Ok(mut parsed) if parsed.has_host() => {
            if !parsed.username().is_empty() {
                let _ = parsed.set_username("***");
            }
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        _ if !url.contains('@') && !url.contains('?') && url.contains(':') => url.to_owned(),
        _ => match url.split_once(':') {
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
            {
                format!("{scheme}:***")
            }
            _ => "***".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        for ok in [
            "redis://127.0.0.1:6379/0",
            "rediss://h:6380",
            "redis+unix:///run/redis.sock",
            "unix:///run/redis.sock",
            " redis://h ",
        ] {
            assert!(ok.parse::<RedisUrl>().is_ok(), "{ok}");
        }
        assert_eq!(
            "http://h".parse::<RedisUrl>(),
            Err(UrlError::Scheme("http".into()))
        );
        assert!(matches!(
            "redis-cluster://h".parse::<RedisUrl>(),
            Err(UrlError::Scheme(_))
        ));
        assert!("hunter2".parse::<RedisUrl>().is_err());
        assert!("rediss://h".parse::<RedisUrl>().is_ok_and(|u| u.is_tls()));
        assert!("redis://h".parse::<RedisUrl>().is_ok_and(|u| !u.is_tls()));
    }

    #[test]
    fn credentials_never_shown() {
        let url: RedisUrl = "rediss://alice:hunter2@r:6380/1".parse().unwrap();
        assert_eq!(url.to_string(), "rediss://***:***@r:6380/1");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "rediss://alice:hunter2@r:6380/1");
        assert_eq!(
            redact_url("redis://:hunter2@redis.internal:6379/2"),
            "redis://:***@redis.internal:6379/2"
        );
        assert_eq!(
            redact_url("redis-cluster://h?password=hunter2"),
            "redis-cluster://h"
        );
        assert_eq!(redact_url("mysql:user:hunter2@host"), "mysql:***");
        assert_eq!(redact_url("hunter2"), "***");
        let err = "http://user:hunter2@h".parse::<RedisUrl>().unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
