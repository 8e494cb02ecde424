use std::time::{Duration, Instant};

use safe_fetch::{FetchError, SafeFetcher};
use tokio::sync::mpsc;

use crate::allowing;
use crate::server::{Reply, TestServer};

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn a_body_over_the_cap_is_refused_and_the_connection_dropped_early() {
    let (tx, mut outcomes) = mpsc::unbounded_channel();
    let server = TestServer::start(move |_| Reply::Stream {
        total: 65 * MIB,
        paced_tail: MIB,
        outcome: tx.clone(),
    })
    .await;
    let fetcher = SafeFetcher::new(allowing(&server)); // default cap: 64 MiB

    let err = fetcher.fetch(&server.url("/big.bin")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge { limit } if limit == 64 * MIB),
        "{err}"
    );
    assert_eq!(err.to_string(), "too large: more than 64 MiB");

    let outcome = tokio::time::timeout(Duration::from_secs(20), outcomes.recv())
        .await
        .expect("server never finished")
        .unwrap();
    assert!(
        outcome.closed_early && outcome.written < 65 * MIB,
        "the server delivered the whole body: {outcome:?}"
    );
}

#[tokio::test]
async fn the_cap_is_inclusive_and_configurable() {
    let server = TestServer::start(|request| {
        let len = request.path.trim_start_matches('/').parse().unwrap_or(0);
        Reply::ok("application/octet-stream", vec![7u8; len])
    })
    .await;
    let fetcher = SafeFetcher::new(allowing(&server).max_bytes(1000));
    assert_eq!(
        fetcher
            .fetch(&server.url("/1000"))
            .await
            .unwrap()
            .bytes
            .len(),
        1000
    );
    let err = fetcher.fetch(&server.url("/1001")).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::DeclaredTooLarge {
                declared: 1001,
                limit: 1000
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "too large: Content-Length 1001 bytes is more than 1000 bytes"
    );
}

#[tokio::test]
async fn a_content_length_over_the_cap_fails_before_reading() {
    let declared = 65 * MIB;
    let server = TestServer::start(move |_| Reply::Stall {
        head: Some(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {declared}\r\n\r\n"
        )),
        body: b"\x89PNG\r\n\x1a\n".to_vec(),
    })
    .await;
    let fetcher = SafeFetcher::new(allowing(&server).timeout(Duration::from_secs(20)));

    let started = Instant::now();
    let err = fetcher.fetch(&server.url("/huge.png")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::DeclaredTooLarge { declared: d, .. } if d == declared),
        "{err}"
    );
    // The body never arrives: only failing on the header can be this quick.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_stalling_server_times_out() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/silent" => Reply::Stall {
            head: None,
            body: vec![],
        },
        _ => Reply::Stall {
            head: Some("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".into()),
            body: vec![1u8; 10],
        },
    })
    .await;
    let fetcher = SafeFetcher::new(allowing(&server).timeout(Duration::from_millis(300)));

    for path in ["/silent", "/half-body"] {
        let started = Instant::now();
        let err = fetcher.fetch(&server.url(path)).await.unwrap_err();
        assert!(matches!(err, FetchError::TimedOut { .. }), "{path}: {err}");
        assert_eq!(err.to_string(), "timed out after 0.3 s");
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
    }
}
