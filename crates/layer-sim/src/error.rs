//! Errors starting the simulator.

use std::path::PathBuf;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot read fixtures from {path}: {source}")]
    ReadFixtures {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fixtures in {path} are not valid {format}: {message}")]
    ParseFixtures {
        path: PathBuf,
        format: &'static str,
        message: String,
    },
    #[error("fixtures are inconsistent: {0}")]
    InvalidFixtures(String),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}
