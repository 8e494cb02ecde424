//! Every endpoint of the v1 API, against the simulator over real HTTP: workspaces, models,
//! inferences from start to `complete` with the balance checked, cancel, workflows, and an
//! upload whose bytes are read back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod common;

use common::*;
use layer_api::{
    AuthedClient, EstimateWorkflowRequest, ExecuteWorkflowRequest, FileSourceType, GuidanceFile,
    GuidanceFileType, InferenceRequest, InferenceStatus, ListModelsQuery, ListWorkflowsQuery,
    ListWorkspacesQuery, Modality, ModelId, PageLimit, UploadBody, UploadUrlRequest, WorkflowId,
    WorkflowRunStatus, WorkspaceId,
};
use layer_sim::catalogue_ids;
use serde_json::{Map, Value, json};

fn model(id: uuid::Uuid) -> ModelId {
    ModelId::from_uuid(id)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

/// Asserts that `workspace` has nothing reserved and `balance` Creative Units.
async fn assert_settled(api: &AuthedClient<'_>, workspace: WorkspaceId, balance: f64) {
    let now = api.get_workspace(workspace).await.unwrap();
    assert!(close(now.reserved_creative_units, 0.0), "{now:?}");
    assert!(close(now.balance_creative_units, balance), "{now:?}");
}

#[tokio::test]
async fn workspaces_list_page_by_page_to_the_end_and_one_by_id() {
    let (sim, _, client, alice) = setup().await;
    let api = client.with_token(&alice);

    let mut seen = Vec::new();
    let mut query = ListWorkspacesQuery {
        limit: Some(PageLimit::new(1).unwrap()),
        cursor: None,
    };
    let mut pages = 0;
    loop {
        let page = api.list_workspaces(&query).await.unwrap();
        pages += 1;
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.pagination.total_count, Some(2));
        seen.extend(page.items.iter().map(|w| w.slug.clone()));
        match page.next_cursor() {
            Some(cursor) => query.cursor = Some(cursor.clone()),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    seen.sort();
    assert_eq!(seen, vec![ACME, ALICE_PERSONAL]);

    let all = api.all_workspaces().await.unwrap();
    assert_eq!(all.len(), 2);

    let one = api.get_workspace(ws(&sim, ALICE_PERSONAL)).await.unwrap();
    assert_eq!(one.slug, ALICE_PERSONAL);
    assert!(close(one.balance_creative_units, 250.0));
    assert!(close(one.reserved_creative_units, 0.0));
    assert!(close(one.available_creative_units, 250.0));
}

#[tokio::test]
async fn models_filter_paginate_and_show_capabilities() {
    let (sim, _, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let acme = ws(&sim, ACME);

    // Walk every page of a small page size; it must agree with one big page.
    let small = ListModelsQuery {
        limit: Some(PageLimit::new(4).unwrap()),
        ..ListModelsQuery::default()
    };
    let mut cursor = None;
    let mut walked = Vec::new();
    let mut pages = 0;
    loop {
        let page = api
            .list_models(
                acme,
                &ListModelsQuery {
                    cursor: cursor.clone(),
                    ..small.clone()
                },
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 4);
        walked.extend(page.items.iter().map(|m| m.model_id));
        match page.next_cursor() {
            Some(next) => cursor = Some(next.clone()),
            None => break,
        }
    }
    let all = api.all_models(acme, &small).await.unwrap();
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(walked, all.iter().map(|m| m.model_id).collect::<Vec<_>>());
    // The workspace's own trained style is listed in it.
    assert!(walked.contains(&model(catalogue_ids::ACME_PRODUCT_STYLE)));

    let three_d = api
        .all_models(
            acme,
            &ListModelsQuery {
                modality: Some(Modality::ThreeD),
                ..ListModelsQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(!three_d.is_empty());
    assert!(three_d.iter().all(|m| m.modality == Modality::ThreeD));
    assert!(three_d.len() < all.len());

    for (capability, expected) in [
        ("lipsync", catalogue_ids::SYNC_LIPSYNC_2),
        ("inpainting", catalogue_ids::FLUX_1_FILL),
        ("text_to_3d", catalogue_ids::MESHY_5),
        ("style_reference", catalogue_ids::FLUX_2_PRO),
    ] {
        let found = api
            .all_models(
                acme,
                &ListModelsQuery {
                    capabilities: vec![capability.into()],
                    ..ListModelsQuery::default()
                },
            )
            .await
            .unwrap();
        assert!(
            found.iter().any(|m| m.model_id == model(expected)),
            "{capability}"
        );
        assert!(found.len() < all.len(), "{capability} filters nothing");
    }

    let detail = api
        .get_model(acme, model(catalogue_ids::FLUX_1_FILL))
        .await
        .unwrap();
    assert_eq!(detail.modality, Modality::Image);
    assert_eq!(detail.capabilities.inpainting, Some(true));
    let lipsync = api
        .get_model(acme, model(catalogue_ids::SYNC_LIPSYNC_2))
        .await
        .unwrap();
    assert_eq!(lipsync.capabilities.lipsync, Some(true));
    let video = api
        .get_model(acme, model(catalogue_ids::KLING_V3_PRO))
        .await
        .unwrap();
    assert_eq!(video.modality, Modality::Video);
    // Passed on unchanged: integers stay integers.
    assert_eq!(
        serde_json::to_value(&video.capabilities.duration_seconds).unwrap(),
        json!([5, 10])
    );
}

#[tokio::test]
async fn inference_runs_to_complete_and_charges_the_balance() {
    let (sim, admin, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);

    let before = api.get_workspace(personal).await.unwrap();
    let request = InferenceRequest::new(model(catalogue_ids::FLUX_2_PRO))
        .prompt("a lighthouse at dawn, watercolour")
        .batch_size(2)
        .size(512, 512);
    let estimate = api.estimate_inference(personal, &request).await.unwrap();
    assert!(estimate.estimated_price_creative_units > 0.0);
    assert!(estimate.has_sufficient_creative_units);
    assert!(close(
        estimate.workspace_balance_creative_units,
        before.available_creative_units
    ));

    let started = api.execute_inference(personal, &request).await.unwrap();
    assert_eq!(started.status, InferenceStatus::InProgress);
    assert!(started.poll_interval_seconds >= 1);
    assert_eq!(
        started.estimated_price_creative_units,
        Some(estimate.estimated_price_creative_units)
    );
    let during = api.get_workspace(personal).await.unwrap();
    assert!(close(
        during.reserved_creative_units,
        estimate.estimated_price_creative_units
    ));

    let run = api
        .wait_for_inference(personal, started.inference_id, &fast_poll())
        .await
        .unwrap();
    assert_eq!(run.status, InferenceStatus::Complete);
    let charged = run.actual_price_creative_units.unwrap();
    assert!(charged > 0.0 && charged <= estimate.estimated_price_creative_units + 1e-9);
    let outputs = run.outputs.unwrap();
    assert_eq!(outputs.len(), 2);
    let (content_type, png) = admin.get_bytes(&outputs[0].url).await;
    assert_eq!(content_type, outputs[0].content_type);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(outputs[0].width, Some(512));

    assert_settled(&api, personal, before.balance_creative_units - charged).await;
}

#[tokio::test]
async fn cancelling_a_run_releases_its_reservation() {
    let (sim, _, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);
    let before = api.get_workspace(personal).await.unwrap();

    let request = InferenceRequest::new(model(catalogue_ids::KLING_V3_PRO))
        .prompt("a paper boat on a river SIM_HOLD");
    let started = api.execute_inference(personal, &request).await.unwrap();
    let held = api.get_workspace(personal).await.unwrap();
    let reserved = started.estimated_price_creative_units.unwrap();
    assert!(reserved > 0.0);
    assert!(close(held.reserved_creative_units, reserved));
    assert!(close(
        held.available_creative_units,
        before.available_creative_units - reserved
    ));

    // A held run does not finish by itself: a bounded wait gives up and says so.
    let err = api
        .wait_for_inference(
            personal,
            started.inference_id,
            &layer_api::PollOptions {
                timeout: std::time::Duration::from_millis(150),
                max_interval: std::time::Duration::from_millis(20),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, layer_api::Error::WaitTimedOut { .. }),
        "{err:?}"
    );

    let cancelled = api
        .cancel_inference(personal, started.inference_id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, InferenceStatus::Cancelled);
    assert!(cancelled.status.is_terminal());
    let polled = api
        .get_inference(personal, started.inference_id)
        .await
        .unwrap();
    assert_eq!(polled.status, InferenceStatus::Cancelled);

    assert_settled(&api, personal, before.balance_creative_units).await;
}

#[tokio::test]
async fn a_refused_prompt_fails_the_run_with_its_code() {
    let (sim, _, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);
    let before = api.get_workspace(personal).await.unwrap();

    let request = InferenceRequest::new(model(catalogue_ids::FLUX_2_PRO))
        .prompt("CONTENT_POLICY_VIOLATION please")
        .batch_size(1);
    let started = api.execute_inference(personal, &request).await.unwrap();
    let run = api
        .wait_for_inference(personal, started.inference_id, &fast_poll())
        .await
        .unwrap();
    assert_eq!(run.status, InferenceStatus::Failed);
    assert_eq!(run.error_code.as_deref(), Some("CONTENT_POLICY_VIOLATION"));
    assert!(run.error.is_some_and(|e| !e.is_empty()));
    assert_settled(&api, personal, before.balance_creative_units).await;
}

#[tokio::test]
async fn upload_round_trip_and_use_as_guidance() {
    let (sim, admin, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);

    // A real PNG: an output of an earlier run.
    let seed_run = api
        .execute_inference(
            personal,
            &InferenceRequest::new(model(catalogue_ids::FLUX_2_PRO))
                .prompt("a teapot")
                .batch_size(1)
                .size(256, 256),
        )
        .await
        .unwrap();
    let seed_run = api
        .wait_for_inference(personal, seed_run.inference_id, &fast_poll())
        .await
        .unwrap();
    let (_, png) = admin.get_bytes(&seed_run.outputs.unwrap()[0].url).await;

    let mut request = UploadUrlRequest::new("image/png", png.len() as u64);
    request.file_name = Some("teapot.png".into());
    request.source_type = Some(FileSourceType::Reference);
    let grant = api
        .upload(personal, &request, UploadBody::from_bytes(png.clone()))
        .await
        .unwrap();
    assert_eq!(grant.content_type, "image/png");
    assert!(!format!("{grant:?}").contains("Signature"));
    assert_eq!(admin.file_bytes(&grant.file_id.to_string()).await, png);

    let mut guided = InferenceRequest::new(model(catalogue_ids::FLUX_2_PRO))
        .prompt("the same teapot, in bronze")
        .batch_size(1);
    guided.guidance_files.push(GuidanceFile::new(
        grant.file_id,
        GuidanceFileType::ReferenceImage,
    ));
    let started = api.execute_inference(personal, &guided).await.unwrap();
    let run = api
        .wait_for_inference(personal, started.inference_id, &fast_poll())
        .await
        .unwrap();
    assert_eq!(run.status, InferenceStatus::Complete);

    // The two steps separately, with a streamed body.
    let bytes: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let grant = api
        .request_upload_url(
            personal,
            &UploadUrlRequest::new("image/webp", bytes.len() as u64),
        )
        .await
        .unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    client
        .upload_bytes(
            &grant.upload_url,
            &grant.content_type,
            UploadBody::from_stream(futures::stream::iter(chunks), bytes.len() as u64),
        )
        .await
        .unwrap();
    assert_eq!(admin.file_bytes(&grant.file_id.to_string()).await, bytes);
}

#[tokio::test]
async fn upload_of_the_wrong_length_is_refused_by_storage() {
    let (sim, _, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);
    let grant = api
        .request_upload_url(personal, &UploadUrlRequest::new("image/png", 100))
        .await
        .unwrap();
    let err = client
        .upload_bytes(
            &grant.upload_url,
            &grant.content_type,
            UploadBody::from_bytes(vec![1u8; 99]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, layer_api::Error::Upload { status, .. } if status.is_client_error()),
        "{err:?}"
    );
    // The client refuses a mismatch itself before asking for a URL.
    let err = api
        .upload(
            personal,
            &UploadUrlRequest::new("image/png", 100),
            UploadBody::from_bytes(vec![1u8; 99]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, layer_api::Error::InvalidRequest(_)),
        "{err:?}"
    );
}

fn product_inputs(file_id: &str, prompt: &str) -> Map<String, Value> {
    json!({
        "product_image": file_id,
        "scene_prompt": prompt,
        "num_variations": 2
    })
    .as_object()
    .cloned()
    .unwrap()
}

#[tokio::test]
async fn workflows_list_estimate_execute_poll_and_cancel() {
    let (sim, _, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);
    let product_shot = WorkflowId::from_uuid(catalogue_ids::PRODUCT_SHOT);

    let all = api
        .all_workflows(personal, &ListWorkflowsQuery::default())
        .await
        .unwrap();
    let shot = all
        .iter()
        .find(|w| w.workflow_id == product_shot)
        .expect("the product shot workflow is listed");
    assert!(
        shot.inputs
            .iter()
            .any(|i| i.name == "product_image" && i.kind == "file" && i.required)
    );
    assert!(!shot.outputs.is_empty());
    let searched = api
        .list_workflows(
            personal,
            &ListWorkflowsQuery {
                search: Some("product shot".into()),
                ..ListWorkflowsQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(searched.items.iter().any(|w| w.workflow_id == product_shot));
    assert!(searched.items.len() < all.len());
    let paged = api
        .all_workflows(
            personal,
            &ListWorkflowsQuery {
                limit: Some(PageLimit::new(2).unwrap()),
                ..ListWorkflowsQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(paged, all);

    let png = b"\x89PNG\r\n\x1a\n not really a picture but bytes".to_vec();
    let grant = api
        .upload(
            personal,
            &UploadUrlRequest::new("image/png", png.len() as u64),
            UploadBody::from_bytes(png),
        )
        .await
        .unwrap();
    let inputs = product_inputs(&grant.file_id.to_string(), "on a marble counter");

    let estimate = api
        .estimate_workflow(
            personal,
            product_shot,
            &EstimateWorkflowRequest {
                inputs: inputs.clone(),
            },
        )
        .await
        .unwrap();
    assert!(estimate.price.estimated_price_creative_units > 0.0);
    assert_eq!(estimate.output_counts.len(), 1);
    assert_eq!(estimate.output_counts[0].count, 2);

    let before = api.get_workspace(personal).await.unwrap();
    let started = api
        .execute_workflow(
            personal,
            product_shot,
            &ExecuteWorkflowRequest {
                inputs: inputs.clone(),
                ..ExecuteWorkflowRequest::default()
            },
        )
        .await
        .unwrap();
    assert!(!started.status.is_terminal());
    let run = api
        .wait_for_workflow_run(personal, product_shot, started.run_id, &fast_poll())
        .await
        .unwrap();
    assert_eq!(run.status, WorkflowRunStatus::Success);
    assert!(!run.steps.is_empty());
    assert!(
        run.steps
            .iter()
            .all(|s| s.status == WorkflowRunStatus::Success)
    );
    assert_eq!(run.outputs.as_ref().map(Vec::len), Some(2));
    let charged = run.actual_price_creative_units.unwrap();
    let after = api.get_workspace(personal).await.unwrap();
    assert!(close(
        after.balance_creative_units,
        before.balance_creative_units - charged
    ));

    // Held, then cancelled: the reservation comes back.
    let held = api
        .execute_workflow(
            personal,
            product_shot,
            &ExecuteWorkflowRequest {
                inputs: product_inputs(&grant.file_id.to_string(), "a beach SIM_HOLD"),
                ..ExecuteWorkflowRequest::default()
            },
        )
        .await
        .unwrap();
    let reserved = api.get_workspace(personal).await.unwrap();
    assert!(close(
        reserved.reserved_creative_units,
        held.estimated_price_creative_units
    ));
    let cancelled = api
        .cancel_workflow_run(personal, product_shot, held.run_id)
        .await
        .unwrap();
    assert_eq!(cancelled.status, WorkflowRunStatus::Cancelled);
    let polled = api
        .get_workflow_run(personal, product_shot, held.run_id)
        .await
        .unwrap();
    assert_eq!(polled.status, WorkflowRunStatus::Cancelled);
    assert_settled(&api, personal, after.balance_creative_units).await;
}

#[tokio::test]
async fn a_refused_workflow_run_reports_its_refusals() {
    let (sim, _, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);
    let product_shot = WorkflowId::from_uuid(catalogue_ids::PRODUCT_SHOT);
    let png = vec![0x89u8; 64];
    let grant = api
        .upload(
            personal,
            &UploadUrlRequest::new("image/png", png.len() as u64),
            UploadBody::from_bytes(png),
        )
        .await
        .unwrap();
    let started = api
        .execute_workflow(
            personal,
            product_shot,
            &ExecuteWorkflowRequest {
                inputs: product_inputs(
                    &grant.file_id.to_string(),
                    "CONTENT_POLICY_VIOLATION on a table",
                ),
                ..ExecuteWorkflowRequest::default()
            },
        )
        .await
        .unwrap();
    let run = api
        .wait_for_workflow_run(personal, product_shot, started.run_id, &fast_poll())
        .await
        .unwrap();
    assert_eq!(run.status, WorkflowRunStatus::Failure);
    assert_eq!(
        run.error_code.as_deref(),
        Some("BlueprintInvalidRuntimeValueError")
    );
    assert!(!run.refusals.is_empty());
    assert_eq!(
        run.refusals[0].code,
        layer_api::RefusalCode::ContentPolicyViolation
    );
}

#[tokio::test]
async fn an_interrupted_upload_resumes_where_storage_says_it_stopped() {
    let (sim, admin, client, alice) = setup().await;
    let api = client.with_token(&alice);
    let personal = ws(&sim, ALICE_PERSONAL);

    for (label, fault) in [
        (
            "start answers 503",
            json!({"kind": "error", "status": 503, "method": "POST"}),
        ),
        (
            "PUT dropped before storage saw it",
            json!({"kind": "drop", "when": "before", "method": "PUT"}),
        ),
        (
            "PUT stored, answer lost",
            json!({"kind": "drop", "when": "after", "method": "PUT"}),
        ),
        (
            "PUT answers 503",
            json!({"kind": "error", "status": 503, "method": "PUT"}),
        ),
    ] {
        let mut fault = fault;
        fault["path_prefix"] = json!("/storage/");
        fault["count"] = json!(1);
        admin.add_fault(fault).await;
        let bytes: Vec<u8> = label.bytes().cycle().take(5_000).collect();
        let grant = api
            .upload(
                personal,
                &UploadUrlRequest::new("image/jpeg", bytes.len() as u64),
                UploadBody::from_bytes(bytes.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("{label}: {e:?}"));
        assert_eq!(
            admin.file_bytes(&grant.file_id.to_string()).await,
            bytes,
            "{label}"
        );
        assert_eq!(admin.faults().await["faults"][0]["applied"], 1, "{label}");
        admin.clear_faults().await;
    }

    // A streamed body cannot be replayed: the failure is reported.
    admin
        .add_fault(json!({"kind": "error", "status": 503, "method": "PUT", "path_prefix": "/storage/", "count": 1}))
        .await;
    let grant = api
        .request_upload_url(personal, &UploadUrlRequest::new("image/png", 3))
        .await
        .unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1, 2, 3])];
    let err = client
        .upload_bytes(
            &grant.upload_url,
            &grant.content_type,
            UploadBody::from_stream(futures::stream::iter(chunks), 3),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, layer_api::Error::Upload { status, .. } if status.as_u16() == 503),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
