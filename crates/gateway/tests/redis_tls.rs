//! `rediss://`: a real Redis server with TLS on (and a password), its certificate signed by
//! a private CA made in the test. With `redis_ca_file`, two replicas share sessions, the
//! limiter and the old transport's directory over TLS; without it, the connection is
//! refused with a clear error that never shows the password.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Env;
use gateway::SharedRedis;
use gateway::{Config, RunningGateway};
use reqwest::StatusCode;
use serde_json::json;
use test_support::redis::{RedisOptions, RedisServer};

const PASSWORD: &str = "hunter2-tls";

/// A TLS-only Redis with a password, its certificate signed by a CA made for it.
fn tls_redis() -> RedisServer {
    RedisServer::start_with(RedisOptions {
        tls: true,
        password: Some(PASSWORD.to_owned()),
        ..RedisOptions::default()
    })
}

fn tls(url: &str, ca_file: Option<&Path>) -> impl Fn(&mut Config) + Clone + use<> {
    let url = url.to_owned();
    let ca_file = ca_file.map(Path::to_path_buf);
    move |config: &mut Config| {
        config.redis_url = Some(url.parse().unwrap());
        config.caps.store = gateway::LimiterStore::Redis(url.parse().unwrap());
        config.redis_ca_file = ca_file.clone();
        config.upstream_request_timeout = Duration::from_secs(5);
    }
}

/// `/readyz`'s body once it has every line in `wanted` (the old transport's subscription
/// comes up in the background), or the last body after 10 s.
async fn readyz_with(env: &Env, gateway: &RunningGateway, wanted: &[&str]) -> String {
    let url = gateway.mcp_url().replace("/mcp", "/readyz");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = env.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.text().await.unwrap();
        if wanted.iter().all(|w| body.contains(w)) || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn with_the_private_ca_replicas_share_sessions_over_tls() {
    let redis = tls_redis();
    let adjust = tls(&redis.url(), Some(&redis.ca_file()));
    let env = Env::start_with(adjust.clone()).await;
    let b = env.replica(adjust).await;

    let mut client = env.session(&env.alice).await;
    // B never saw the session: it restores it from the TLS Redis.
    common::move_session(&mut client, b.mcp_url()).await;
    client.url = env.mcp_url();
    client.ok("list_workspaces", json!({})).await;

    // Every Redis user of the gateway went through TLS: sessions, limiter, the old
    // transport's pub/sub directory.
    let wanted = [
        "session store (redis): ok",
        "limiter (redis): ok",
        "old-transport directory (redis): ok",
    ];
    for gateway in [&env.gateway, &b] {
        let body = readyz_with(&env, gateway, &wanted).await;
        for w in wanted {
            assert!(body.contains(w), "{body}");
        }
    }

    b.shutdown().await;
    env.shutdown().await;
}

#[tokio::test]
async fn without_the_ca_the_server_is_not_trusted_and_the_password_stays_hidden() {
    let redis = tls_redis();
    let url = redis.url().parse().unwrap();

    // Straight through the gateway's connector: refused, saying why, without the password.
    let untrusted =
        SharedRedis::connect_with_tls(&url, &redis_conn_tls(None), Duration::from_secs(2)).unwrap();
    let error = untrusted.ping().await.unwrap_err().to_string();
    assert!(error.contains("certificate"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
    let trusted = SharedRedis::connect_with_tls(
        &url,
        &redis_conn_tls(Some(&redis.ca_file())),
        Duration::from_secs(2),
    )
    .unwrap();
    trusted.ping().await.unwrap();

    // A gateway without the CA starts (Redis may be away at start), then says so on
    // `/readyz` and refuses new sessions with 503, never showing the password.
    let env = Env::start_with(tls(&redis.url(), None)).await;
    let mut client = env.client(&env.alice);
    let answer = client.send_initialize().await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{answer:?}");
    assert!(!answer.text.contains(PASSWORD), "{answer:?}");
    let body = readyz_with(&env, &env.gateway, &[]).await;
    assert!(
        body.contains("session store (redis): unreachable"),
        "{body}"
    );
    assert!(
        body.contains("old-transport directory (redis): unreachable"),
        "{body}"
    );
    assert!(body.contains("limiter (redis): unreachable"), "{body}");
    assert!(!body.contains(PASSWORD), "{body}");
    env.shutdown().await;
}

#[tokio::test]
async fn the_oauth_store_uses_the_same_ca() {
    let redis = tls_redis();
    let dir = Path::new("/nonexistent");
    let ca = redis.ca_file();
    let with_ca =
        auth_server::open_store_with_tls(Some(&redis.url()), dir, &redis_conn_tls(Some(&ca)))
            .unwrap();
    with_ca.ping().await.unwrap();
    assert!(with_ca.signing_keys().await.unwrap().is_empty());

    let without =
        auth_server::open_store_with_tls(Some(&redis.url()), dir, &redis_conn_tls(None)).unwrap();
    let error = without.ping().await.unwrap_err().to_string();
    assert!(!error.contains(PASSWORD), "{error}");
}

fn redis_conn_tls(ca_file: Option<&Path>) -> redis_conn::Tls {
    redis_conn::Tls::with_ca_file(ca_file)
}
