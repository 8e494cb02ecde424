//! Every error class against the simulator: 401, 403, each 404, 402, 409, 422, 429, 5xx via
//! fault injection, a stalled answer, a dropped connection; retries that never start a run
//! twice; the 6th concurrent run refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use std::time::Duration;

use common::*;
use layer_api::{
    ErrorCode, EstimateWorkflowRequest, GuidanceFile, GuidanceFileType, IdempotencyKey,
    InferenceRequest, LayerClient, ListModelsQuery, ListWorkspacesQuery, ModelId, RetryPolicy,
    WorkflowId, WorkspaceId,
};
use layer_sim::catalogue_ids;
use serde_json::json;

fn flux() -> ModelId {
    ModelId::from_uuid(catalogue_ids::FLUX_2_PRO)
}

fn random_ws() -> WorkspaceId {
    WorkspaceId::from_uuid(uuid::Uuid::new_v4())
}

fn assert_code(err: &layer_api::Error, status: u16, code: ErrorCode) {
    assert_eq!(err.status().map(|s| s.as_u16()), Some(status), "{err:?}");
    assert_eq!(err.code(), Some(&code), "{err:?}");
    let api = err.api().unwrap();
    assert!(!api.message().is_empty());
    assert!(api.request_id().is_some(), "no request id: {err:?}");
}

/// Asserts that `answer` is a 404 with this code.
fn assert_not_found<T: std::fmt::Debug>(answer: layer_api::Result<T>, code: ErrorCode) {
    assert_code(&answer.unwrap_err(), 404, code);
}

#[tokio::test]
async fn unauthenticated_forbidden_and_not_found() {
    let sim = sim().await;
    let client = client(&sim);
    let bob = pat(&sim, "bob");

    // 401: unknown and revoked tokens; neither appears in the error.
    for token in [
        layer_api::BearerToken::new("layer_pat_not_a_real_one").unwrap(),
        revoked_pat(&sim, "alice"),
    ] {
        let err = client
            .with_token(&token)
            .list_workspaces(&ListWorkspacesQuery::default())
            .await
            .unwrap_err();
        assert_code(&err, 401, ErrorCode::Unauthenticated);
        assert!(!err.is_retryable());
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(token.expose_secret()), "{shown}");
    }

    // 403: a workspace that exists, of which bob is not a member.
    let err = client
        .with_token(&bob)
        .get_workspace(ws(&sim, ALICE_PERSONAL))
        .await
        .unwrap_err();
    assert_code(&err, 403, ErrorCode::Forbidden);

    // 404, each kind.
    let api = client.with_token(&bob);
    let acme = ws(&sim, ACME);
    assert_not_found(
        api.get_workspace(random_ws()).await,
        ErrorCode::WorkspaceNotFound,
    );
    let random_model = ModelId::from_uuid(uuid::Uuid::new_v4());
    let model = api.get_model(acme, random_model).await;
    assert_not_found(model, ErrorCode::ModelNotFound);
    // A trained style of another workspace is not found in this one.
    let style = ModelId::from_uuid(catalogue_ids::ACME_PRODUCT_STYLE);
    let model = api.get_model(ws(&sim, BOB_SANDBOX), style).await;
    assert_not_found(model, ErrorCode::ModelNotFound);
    let random_workflow = WorkflowId::from_uuid(uuid::Uuid::new_v4());
    let no_inputs = EstimateWorkflowRequest::default();
    let estimate = api
        .estimate_workflow(acme, random_workflow, &no_inputs)
        .await;
    assert_not_found(estimate, ErrorCode::WorkflowNotFound);
    let run = api.get_inference(acme, uuid::Uuid::new_v4().into()).await;
    assert_not_found(run, ErrorCode::RunNotFound);
    let product_shot = WorkflowId::from_uuid(catalogue_ids::PRODUCT_SHOT);
    let run = api
        .get_workflow_run(acme, product_shot, uuid::Uuid::new_v4().into())
        .await;
    assert_not_found(run, ErrorCode::RunNotFound);
    let mut request = InferenceRequest::new(flux()).prompt("x").batch_size(1);
    request.guidance_files.push(GuidanceFile::new(
        uuid::Uuid::new_v4().into(),
        GuidanceFileType::ReferenceImage,
    ));
    let err = api.execute_inference(acme, &request).await.unwrap_err();
    assert_code(&err, 404, ErrorCode::FileNotFound);
}

#[tokio::test]
async fn validation_errors_carry_every_item() {
    let (sim, admin, client, alice) = setup().await;
    let personal = ws(&sim, ALICE_PERSONAL);
    let mut request = InferenceRequest::new(flux()).prompt("x").batch_size(40);
    request.options.stability = Some(3.0);
    let err = client
        .with_token(&alice)
        .execute_inference(personal, &request)
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(422));
    let api = err.api().unwrap();
    let locations: Vec<String> = api
        .validation_errors()
        .iter()
        .map(|i| i.location())
        .collect();
    assert!(
        locations.contains(&"body.batch_size".to_owned()),
        "{locations:?}"
    );
    assert!(
        locations.contains(&"body.stability".to_owned()),
        "{locations:?}"
    );
    assert!(err.to_string().contains("body.batch_size"));
    assert!(!err.is_retryable());
    assert_eq!(admin.counter("runs_created").await, 0);
}

#[tokio::test]
async fn insufficient_balance_creates_nothing() {
    let (sim, admin, client, _) = setup().await;
    let bob = pat(&sim, "bob");
    let sandbox = ws(&sim, BOB_SANDBOX);
    let request = InferenceRequest::new(flux())
        .prompt("a castle")
        .batch_size(16)
        .size(1024, 1024);
    let api = client.with_token(&bob);
    let estimate = api.estimate_inference(sandbox, &request).await.unwrap();
    assert!(!estimate.has_sufficient_creative_units);
    assert!(estimate.estimated_remaining_balance_creative_units < 0.0);
    let err = api.execute_inference(sandbox, &request).await.unwrap_err();
    assert_code(&err, 402, ErrorCode::InsufficientBalance);
    assert_eq!(admin.counter("runs_created").await, 0);
    let after = api.get_workspace(sandbox).await.unwrap();
    assert_eq!(after.reserved_creative_units, 0.0);
}

#[tokio::test]
async fn idempotency_key_reuse_and_finished_runs_conflict() {
    let (sim, admin, client, alice) = setup().await;
    let personal = ws(&sim, ALICE_PERSONAL);
    let key = IdempotencyKey::new("gateway-call-1").unwrap();
    let api = client.with_token(&alice).with_idempotency_key(key);

    let request = InferenceRequest::new(flux()).prompt("a fox").batch_size(1);
    let first = api.execute_inference(personal, &request).await.unwrap();
    // Same key, same body: the same run, not a second one.
    let again = api.execute_inference(personal, &request).await.unwrap();
    assert_eq!(first.inference_id, again.inference_id);
    assert_eq!(admin.counter("runs_created").await, 1);
    // Same key, another body: 409.
    let err = api
        .execute_inference(personal, &request.clone().prompt("a wolf"))
        .await
        .unwrap_err();
    assert_code(&err, 409, ErrorCode::IdempotencyKeyReused);
    assert_eq!(admin.counter("runs_created").await, 1);

    // Cancelling a finished run: 409 RUN_NOT_CANCELLABLE.
    let alice_api = client.with_token(&alice);
    alice_api
        .wait_for_inference(personal, first.inference_id, &fast_poll())
        .await
        .unwrap();
    let err = alice_api
        .cancel_inference(personal, first.inference_id)
        .await
        .unwrap_err();
    assert_code(&err, 409, ErrorCode::RunNotCancellable);
}

#[tokio::test]
async fn the_sixth_concurrent_run_is_refused() {
    let (sim, admin, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let acme = ws(&sim, ACME);
    let held = InferenceRequest::new(flux())
        .prompt("hold on SIM_HOLD")
        .batch_size(1);

    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(api.execute_inference(acme, &held).await.unwrap());
    }
    let err = api.execute_inference(acme, &held).await.unwrap_err();
    assert_code(&err, 429, ErrorCode::RateLimited);
    assert!(
        err.retry_after()
            .is_some_and(|d| d >= Duration::from_secs(1))
    );
    assert!(err.is_retryable());

    // Another workspace of the same user has its own limit; bob has his own in acme.
    let personal = ws(&sim, ALICE_PERSONAL);
    api.execute_inference(personal, &held).await.unwrap();
    let bob = pat(&sim, "bob");
    client
        .with_token(&bob)
        .execute_inference(acme, &held)
        .await
        .unwrap();

    let state = admin.state().await;
    assert_eq!(state["counters"]["runs_created"], 7);
    assert!(state["counters"]["rate_limited"].as_u64().unwrap() >= 1);
    let alice_acme = state["concurrency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == "alice" && c["workspace_id"] == acme.to_string())
        .unwrap()
        .clone();
    assert_eq!(alice_acme["max_unfinished_runs"], 5);

    // Once one finishes, there is room again.
    admin.finish_run(&runs[0].inference_id.to_string()).await;
    api.execute_inference(acme, &held).await.unwrap();
}

#[tokio::test]
async fn a_429_with_a_short_retry_after_is_waited_out_within_the_cap() {
    let (sim, admin, client, alice) = setup_with(|config| {
        config.retry.max_retry_after = Duration::from_secs(5);
        config.retry.max_attempts = 2;
    })
    .await;
    let api = client.with_token(&alice);
    let acme = ws(&sim, ACME);
    let held = InferenceRequest::new(flux())
        .prompt("SIM_HOLD")
        .batch_size(1);
    for _ in 0..5 {
        api.execute_inference(acme, &held).await.unwrap();
    }
    // Held runs never finish by themselves: the retry is refused again, and no run starts.
    let started = std::time::Instant::now();
    let err = api.execute_inference(acme, &held).await.unwrap_err();
    assert_code(&err, 429, ErrorCode::RateLimited);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the client waited"
    );
    let state = admin.state().await;
    assert_eq!(state["counters"]["runs_created"], 5);
    assert_eq!(state["counters"]["rate_limited"], 2);
}

#[tokio::test]
async fn server_errors_are_retried_for_safe_calls() {
    let (sim, admin, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let acme = ws(&sim, ACME);

    // Two 503s, then the real answer.
    admin
        .add_fault(json!({"kind": "error", "status": 503, "path_prefix": "/api/v1/workspaces", "method": "GET", "count": 2}))
        .await;
    let page = api
        .list_models(acme, &ListModelsQuery::default())
        .await
        .unwrap();
    assert!(!page.items.is_empty());
    assert_eq!(admin.faults().await["faults"][0]["applied"], 2);
    admin.clear_faults().await;

    // Persistent 502: given up after max_attempts, reported as retryable. 500 is not in the
    // retry list: one attempt only.
    for (status, retryable, attempts) in [(502, true, 3), (500, false, 1)] {
        admin
            .add_fault(json!({"kind": "error", "status": status, "path_prefix": "/api/v1/workspaces", "method": "GET"}))
            .await;
        let err = api.get_workspace(acme).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(err.is_retryable(), retryable, "{status}");
        assert_eq!(admin.faults().await["faults"][0]["applied"], attempts);
        admin.clear_faults().await;
    }
}

#[tokio::test]
async fn a_post_whose_answer_is_lost_is_retried_without_a_second_run() {
    let (sim, admin, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);
    let before = api.get_workspace(personal).await.unwrap();

    // The run is created, then the connection is cut before the answer goes out.
    admin
        .add_fault(json!({
            "kind": "drop", "when": "after", "method": "POST", "count": 1,
            "path_prefix": format!("/api/v1/workspaces/{personal}/inferences")
        }))
        .await;
    let request = InferenceRequest::new(flux())
        .prompt("a heron")
        .batch_size(1);
    let started = api.execute_inference(personal, &request).await.unwrap();

    let state = admin.state().await;
    assert_eq!(state["counters"]["faults_applied"], 1);
    assert_eq!(state["counters"]["runs_created"], 1);
    assert_eq!(state["counters"]["idempotent_replays"], 1);
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["id"], started.inference_id.to_string());
    let during = api.get_workspace(personal).await.unwrap();
    assert!(
        (during.reserved_creative_units - started.estimated_price_creative_units.unwrap()).abs()
            < 1e-6,
        "reserved once"
    );
    assert!(before.reserved_creative_units.abs() < 1e-6);

    // Workflow runs likewise.
    admin
        .add_fault(json!({
            "kind": "drop", "when": "after", "method": "POST", "count": 1,
            "path_prefix": format!("/api/v1/workspaces/{personal}/workflows")
        }))
        .await;
    let png = vec![1u8; 32];
    let grant = api
        .upload(
            personal,
            &layer_api::UploadUrlRequest::new("image/png", 32),
            layer_api::UploadBody::from_bytes(png),
        )
        .await
        .unwrap();
    let inputs = json!({"product_image": grant.file_id.to_string(), "scene_prompt": "a shelf"});
    api.execute_workflow(
        personal,
        WorkflowId::from_uuid(catalogue_ids::PRODUCT_SHOT),
        &layer_api::ExecuteWorkflowRequest {
            inputs: inputs.as_object().cloned().unwrap(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let state = admin.state().await;
    assert_eq!(state["counters"]["workflow_runs_created"], 1);
    assert_eq!(state["counters"]["idempotent_replays"], 2);
}

#[tokio::test]
async fn dropped_connections_and_stalled_answers() {
    let (sim, admin, client, alice) = setup_with(|config| {
        config.retry = RetryPolicy::never();
        config.request_timeout = Duration::from_millis(300);
    })
    .await;
    let api = client.with_token(&alice);
    let acme = ws(&sim, ACME);

    admin
        .add_fault(json!({"kind": "drop", "path_prefix": "/api/v1/workspaces", "count": 1}))
        .await;
    let err = api.get_workspace(acme).await.unwrap_err();
    assert!(
        matches!(err, layer_api::Error::ConnectionLost { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.status().is_none());

    admin
        .add_fault(json!({"kind": "stall", "path_prefix": "/api/v1/workspaces", "count": 1}))
        .await;
    let started = std::time::Instant::now();
    let err = api.get_workspace(acme).await.unwrap_err();
    assert!(matches!(err, layer_api::Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // With retries on, a drop and a stall are each ridden out.
    let mut config = common::config(&sim);
    config.request_timeout = Duration::from_millis(300);
    let patient = LayerClient::new(config).unwrap();
    for kind in ["drop", "stall"] {
        admin
            .add_fault(json!({"kind": kind, "path_prefix": "/api/v1/workspaces", "count": 1}))
            .await;
        let one = patient
            .with_token(&alice)
            .get_workspace(acme)
            .await
            .unwrap();
        assert_eq!(one.workspace_id, acme, "{kind}");
    }

    // A server that is not there at all.
    let addr = sim.local_addr();
    sim.shutdown().await;
    let mut gone =
        layer_api::ClientConfig::with_base_url(format!("http://{addr}/api/v1").parse().unwrap());
    gone.retry = RetryPolicy::never();
    let err = LayerClient::new(gone)
        .unwrap()
        .with_token(&alice)
        .get_workspace(acme)
        .await
        .unwrap_err();
    assert!(matches!(err, layer_api::Error::Connect { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains(alice.expose_secret()));
}
