//! Fault injection: 5xx fractions, latency, dropped connections, stalls; admin off by default.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod common;

use std::time::{Duration, Instant};

use common::*;
use layer_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn error_fraction_is_spread_evenly_and_clearable() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    h.add_fault(json!({"kind": "error", "probability": 0.5, "path_prefix": "/api/v1/workspaces", "method": "GET"}))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = h.get(&alice, "/workspaces").await;
        statuses.push(r.status().as_u16());
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert!(r.headers().contains_key("x-request-id"));
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        3,
        "{statuses:?}"
    );
    // Admin paths are never faulted; clearing restores service.
    let faults: Value = h.fetch_json(h.url("/_sim/faults")).await;
    assert_eq!(faults["faults"][0]["applied"], 3);
    h.http.delete(h.url("/_sim/faults")).send().await.unwrap();
    assert_eq!(h.get(&alice, "/workspaces").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_matching_requests() {
    let h = Harness::with_fault(
        json!({"kind": "latency", "latency_ms": 300, "path_prefix": "/api/v1/workspaces"}),
    )
    .await;
    let t = Instant::now();
    assert_eq!(
        h.get(&h.pat("alice"), "/workspaces").await.status(),
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn dropped_response_leaves_one_run_that_a_keyed_retry_finds() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    h.add_fault(json!({"kind": "drop", "when": "after", "method": "POST", "path_prefix": "/api/v1/", "count": 1}))
        .await;
    let path = format!("/workspaces/{ACME}/inferences");
    let body = json!({"model_id": FLUX, "prompt": "SIM_HOLD", "batch_size": 1});
    let first = h
        .http
        .post(h.api(&path))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "retry-1")
        .json(&body)
        .send()
        .await;
    let err = first.expect_err("the connection is dropped");
    assert!(!err.is_status());
    let state = h.state().await;
    assert_eq!(state["counters"]["runs_created"], 1, "the work was done");
    let run_id = state["runs"][0]["id"].clone();
    let retry = h.post(&alice, &path, &body, Some("retry-1")).await;
    assert_eq!(retry.status(), StatusCode::OK);
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["inference_id"], run_id);
    let state = h.state().await;
    assert_eq!(state["counters"]["runs_created"], 1);
    assert_eq!(state["workspaces"][0]["reserved_creative_units"], 1.0);
}

#[tokio::test]
async fn drop_before_does_no_work() {
    let h = Harness::with_fault(json!({"kind": "drop", "method": "POST", "count": 1})).await;
    let r = h
        .http
        .post(h.api(&format!("/workspaces/{ACME}/inferences")))
        .bearer_auth(h.pat("alice"))
        .json(&json!({"model_id": FLUX, "prompt": "x"}))
        .send()
        .await;
    assert!(r.is_err());
    assert_eq!(h.state().await["counters"]["runs_created"], 0);
}

#[tokio::test]
async fn a_stalled_response_times_the_client_out_and_shutdown_ends_it() {
    let h = Harness::with_fault(
        json!({"kind": "stall", "path_prefix": "/api/v1/workspaces", "count": 1}),
    )
    .await;
    let r = h
        .http
        .get(h.api("/workspaces"))
        .bearer_auth(h.pat("alice"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.expect_err("stalled").is_timeout());
    let t = Instant::now();
    h.sim.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// Posts a fault spec to the admin API, whatever the answer; its status.
async fn post_fault(h: &Harness, spec: &Value) -> StatusCode {
    let request = h.http.post(h.url("/_sim/faults")).json(spec);
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn admin_is_404_unless_enabled() {
    let h = Harness::with(SimConfig {
        enable_admin: false,
        ..SimConfig::for_tests()
    })
    .await;
    for path in ["/_sim/state", "/_sim/faults"] {
        let r = h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let status = post_fault(&h, &json!({"kind": "error"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_fault_specs_are_refused() {
    let h = Harness::start().await;
    for spec in [
        json!({"kind": "explode"}),
        json!({"kind": "error", "status": 404}),
        json!({"kind": "latency"}),
    ] {
        let status = post_fault(&h, &spec).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{spec}");
    }
}

#[tokio::test]
async fn html_pages_and_deprecation_headers_can_be_injected() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    h.add_fault(json!({"kind": "html", "path_prefix": "/api/v1/workspaces", "count": 1}))
        .await;
    let r = h.get(&alice, "/workspaces").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().starts_with("<!doctype html>"));

    h.add_fault(json!({"kind": "deprecation", "path_prefix": "/api/v1/workspaces"}))
        .await;
    let r = h.get(&alice, "/workspaces").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["deprecation"], "@1767225600");
    assert!(r.headers().contains_key("sunset"));
    let body: Value = r.json().await.unwrap();
    assert!(body["workspaces"].is_array(), "still handled");
}
