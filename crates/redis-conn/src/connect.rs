//! From a [`RedisUrl`] to a `redis::Client` and a `ConnectionManager`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::RedisUrl;

/// TLS settings for `rediss://` URLs. Without a CA file the server is verified against the
/// system's roots; with one, against that CA only (a private CA). Plain `redis://` and
/// Unix-socket URLs ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of the CA(s) that signed the Redis server's certificate.
    pub ca_file: Option<PathBuf>,
}

impl Tls {
    pub fn with_ca_file(ca_file: Option<&Path>) -> Self {
        Tls {
            ca_file: ca_file.map(Path::to_path_buf),
        }
    }
}

/// Why no client could be made. Never holds the URL (it may carry a password).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the Redis connection must be made inside a Tokio runtime")]
    NoRuntime,
    #[error("cannot use the Redis CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("invalid Redis URL ({0:?})")]
    Client(redis::ErrorKind),
}

impl ConnectError {
    /// The Redis client's error kind, when the client refused the settings.
    pub fn kind(&self) -> Option<redis::ErrorKind> {
        match self {
            ConnectError::Client(kind) => Some(*kind),
            _ => None,
        }
    }
}

/// A client for `url`: for pub/sub connections, or to hand to [`manager`]. Connects
/// nothing yet. A `rediss://` URL uses rustls; its CA is read here, so a wrong `ca_file`
/// fails at start, while an untrusted server fails on first use.
pub fn client(url: &RedisUrl, tls: &Tls) -> Result<redis::Client, ConnectError> {
    if !url.is_tls() {
        return redis::Client::open(url.expose()).map_err(|e| ConnectError::Client(e.kind()));
    }
    install_crypto_provider();
    let Some(path) = &tls.ca_file else {
        return redis::Client::open(url.expose()).map_err(|e| ConnectError::Client(e.kind()));
    };
    let ca_error = |reason: String| ConnectError::CaFile {
        path: path.clone(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.kind().to_string()))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(ca_error("no PEM certificate in it".to_owned()));
    }
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(url.expose(), certificates).map_err(|e| {
        if e.kind() == redis::ErrorKind::InvalidClientConfig {
            ConnectError::Client(e.kind())
        } else {
            ca_error(format!("{:?}", e.kind()))
        }
    })
}

/// A lazy `ConnectionManager` on `client` (connects on first use, so Redis may be down at
/// start). `timeout` bounds connecting and each answer; there are no retries inside it:
/// a call during an outage fails at once and the next call tries a fresh connection.
/// Must be called inside a Tokio runtime.
pub fn manager(
    client: &redis::Client,
    timeout: Duration,
) -> Result<ConnectionManager, ConnectError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(ConnectError::NoRuntime);
    }
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| ConnectError::Client(e.kind()))
}

/// What kind of Redis fault `error` is, for errors and logs: never the URL or a value.
/// Every crate that talks to Redis reports faults with this, so an operator reads the same
/// words (and a TLS trust failure names the fix) whichever part of the gateway hit it.
pub fn describe(error: &redis::RedisError) -> String {
    let what = if error.is_timeout() {
        "redis did not answer in time"
    } else if error.is_connection_refusal() {
        "redis refused the connection"
    } else if let Some(reason) = tls_failure(error) {
        reason
    } else if error.is_connection_dropped() || error.is_io_error() {
        "redis connection lost"
    } else {
        "redis returned an error"
    };
    format!("{what} ({:?})", error.kind())
}

/// A clear reason when `error` is a TLS verification failure (the client's text names the
/// certificate problem only, never the URL), for callers that map errors to their own.
pub fn tls_failure(error: &redis::RedisError) -> Option<&'static str> {
    let text = error.to_string();
    (text.contains("certificate") || text.contains("UnknownIssuer")).then_some(
        "TLS: the server's certificate is not trusted (set redis_ca_file to the CA that signed it)",
    )
}

/// rustls needs a process-wide crypto provider when more than one could be compiled in;
/// the workspace uses aws-lc-rs. Installing fails harmlessly when one is already set.
fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_refused_at_start() {
        let url: RedisUrl = "rediss://:hunter2@127.0.0.1:1".parse().unwrap();
        let missing = Tls::with_ca_file(Some(Path::new("/nonexistent/ca.pem")));
        let err = client(&url, &missing).unwrap_err();
        assert!(matches!(err, ConnectError::CaFile { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        let dir = std::env::temp_dir().join(format!("redis-conn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let err = client(&url, &Tls::with_ca_file(Some(&empty))).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_fault_is_described_by_its_kind_without_the_url() {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let url: RedisUrl = "redis://:hunter2@127.0.0.1:1".parse().unwrap();
        let client = client(&url, &Tls::default()).unwrap();
        let error = client
            .get_multiplexed_async_connection()
            .await
            .expect_err("nothing listens on port 1");
        let text = describe(&error);
        assert!(text.starts_with("redis refused the connection"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("127.0.0.1"),
            "{text}"
        );
    }

    #[test]
    fn tls_without_ca_uses_system_roots() {
        let url: RedisUrl = "rediss://127.0.0.1:1".parse().unwrap();
        assert!(client(&url, &Tls::default()).is_ok());
    }

    #[test]
    fn manager_needs_a_runtime() {
        let url: RedisUrl = "redis://127.0.0.1:1".parse().unwrap();
        let c = client(&url, &Tls::default()).unwrap();
        assert!(matches!(
            manager(&c, Duration::from_secs(1)),
            Err(ConnectError::NoRuntime)
        ));
    }
}
