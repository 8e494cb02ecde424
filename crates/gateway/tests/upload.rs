//! `upload_file` end to end: a simulator-served PNG becomes a file_id that execute_forge takes
//! as guidance; private addresses, redirects to them, oversized files, HTML pages and
//! non-http schemes are refused with UPLOAD_FAILED and nothing reaches Layer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use common::{ACME, Env, FLUX_2_PRO, wait_forge};
use serde_json::json;

/// A small web server on loopback, allow-listed like the simulator: it serves an HTML page,
/// a 65 MB file, and a redirect to a private address.
async fn file_server() -> SocketAddr {
    let app = Router::new()
        .route(
            "/page.png",
            get(|| async {
                (
                    [("content-type", "image/png")],
                    "<!doctype html><html><body>hi</body></html>",
                )
            }),
        )
        .route(
            "/big.png",
            get(|| async {
                let mut bytes = vec![0u8; 65 * 1024 * 1024];
                bytes[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
                ([("content-type", "image/png")], bytes).into_response()
            }),
        )
        .route(
            "/to-private",
            get(|| async { Redirect::temporary("http://10.0.0.1/cat.png") }),
        )
        .route(
            "/to-metadata",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_simulator_png_becomes_a_file_id_that_execute_forge_accepts() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    // A PNG the simulator serves: an output of a first run.
    let started = client
        .ok("execute_forge", json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "prompt": "a cat", "batch_size": 1}))
        .await;
    let done = wait_forge(&mut client, ACME, started["inference_id"].as_str().unwrap()).await;
    let url = done.structured()["outputs"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();

    let uploaded = client
        .ok("upload_file", json!({"workspace_id": ACME, "url": url}))
        .await;
    assert_eq!(uploaded["content_type"], "image/png");
    let file_id = uploaded["file_id"].as_str().unwrap().to_owned();
    // The simulator holds exactly the bytes served.
    let original = env.download(&url).await;
    let stored = env.admin().file_bytes(&file_id).await;
    assert_eq!(original, stored);
    assert_eq!(uploaded["file_size_bytes"], original.len());

    let args = json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "prompt": "the same cat, in watercolour", "batch_size": 1,
                      "guidance_files": [{"file_id": file_id, "type": "reference_image", "weight": 0.8}]});
    client.ok("estimate_forge_price", args.clone()).await;
    let started = client.ok("execute_forge", args).await;
    let done = wait_forge(&mut client, ACME, started["inference_id"].as_str().unwrap()).await;
    assert_eq!(done.structured()["status"], "complete");
    env.shutdown().await;
}

#[tokio::test]
async fn unsafe_or_unsuitable_urls_are_refused_and_nothing_reaches_layer() {
    let files = file_server().await;
    let env = Env::start_with(|c| c.upload_allow_hosts.push(files.to_string())).await;
    let mut client = env.session(&env.alice.clone()).await;
    let own = env.gateway.addr;
    let cases = [
        (format!("http://{own}/healthz"), "127.0.0.1"),
        ("http://10.1.2.3/cat.png".to_owned(), "10.1.2.3"),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254",
        ),
        ("http://[::1]:8080/cat.png".to_owned(), "::1"),
        ("http://[::ffff:127.0.0.1]/cat.png".to_owned(), "blocked"),
        ("http://2130706433/cat.png".to_owned(), "127.0.0.1"),
        (format!("http://{files}/to-private"), "redirect"),
        (format!("http://{files}/to-metadata"), "redirect"),
        (format!("http://{files}/big.png"), "too large"),
        (format!("http://{files}/page.png"), "HTML page"),
        ("file:///etc/passwd".to_owned(), "scheme"),
        ("ftp://example.com/cat.png".to_owned(), "scheme"),
    ];
    let uploads_before = env.sim_state().await["counters"]["upload_urls_created"].clone();
    for (url, needle) in cases {
        let s = client
            .fails("upload_file", json!({"workspace_id": ACME, "url": url}))
            .await;
        assert_eq!(s["code"], "UPLOAD_FAILED", "{url}: {s}");
        assert_eq!(s["status"], 400);
        let message = s["message"].as_str().unwrap();
        assert!(message.contains(needle), "{url}: {message}");
    }
    assert_eq!(
        env.sim_state().await["counters"]["upload_urls_created"],
        uploads_before,
        "no upload was started"
    );
    env.shutdown().await;
}
