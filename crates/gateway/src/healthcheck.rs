//! `layer-mcp-gateway healthcheck`: asks a running gateway's `/healthz` and says whether it
//! answered 200. The runtime image has no shell or curl, so a container health check
//! (Docker's `HEALTHCHECK`, compose's `healthcheck`) runs the binary itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Why the check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer from {addr} within {secs} s")]
    Timeout { addr: SocketAddr, secs: u64 },
    #[error("{addr} answered `{status_line}`")]
    Status {
        addr: SocketAddr,
        status_line: String,
    },
}

/// The address to ask for a gateway listening on `listen`: a wildcard address (`0.0.0.0`,
/// `[::]`) is asked on loopback.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// `GET /healthz` on `addr`; `Ok` on a 200 within `timeout`.
pub async fn check(addr: SocketAddr, timeout: Duration) -> Result<(), HealthError> {
    let secs = timeout.as_secs().max(1);
    tokio::time::timeout(timeout, ask(addr))
        .await
        .map_err(|_| HealthError::Timeout { addr, secs })?
}

async fn ask(addr: SocketAddr) -> Result<(), HealthError> {
    let connect = |source| HealthError::Connect { addr, source };
    let mut stream = TcpStream::connect(addr).await.map_err(connect)?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(connect)?;
    // The status line is all we need; it fits in the first read of a 200 answer.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await.map_err(connect)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().trim().to_owned();
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(()),
        _ => Err(HealthError::Status { addr, status_line }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_probed_on_loopback() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(probe_addr(addr).to_string(), "127.0.0.1:8080");
        let addr: SocketAddr = "[::]:9".parse().unwrap();
        assert_eq!(probe_addr(addr).to_string(), "[::1]:9");
        let addr: SocketAddr = "10.1.2.3:80".parse().unwrap();
        assert_eq!(probe_addr(addr), addr);
    }

    #[tokio::test]
    async fn ok_on_200_and_an_error_naming_the_answer_otherwise() {
        let ok = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok\n" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, ok).await });
        check(addr, Duration::from_secs(5)).await.unwrap();

        let missing = axum::Router::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, missing).await });
        let err = check(addr, Duration::from_secs(5)).await.unwrap_err();
        assert!(err.to_string().contains("404"), "{err}");

        // Nothing listening: a port just freed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = check(addr, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, HealthError::Connect { .. }), "{err}");
    }
}
