//! The v1 API over real HTTP: auth, workspaces, models, validation, the ledger through a run's
//! life, cancel, the concurrency limit, idempotency, failure triggers, workflows, outputs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod common;

use common::*;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// The string `key` of every item of a JSON array.
fn each(items: &Value, key: &str) -> Vec<String> {
    let items = items.as_array().unwrap().iter();
    items.map(|i| i[key].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn auth_failures_are_401_problems_with_request_ids() {
    let h = Harness::start().await;
    let r = h.http.get(h.api("/workspaces")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="layer""#);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let header_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(body["request_id"], header_id.as_str());
    assert_eq!(body["status"], 401);
    assert_eq!(body["instance"], "/api/v1/workspaces");

    let revoked = h
        .sim
        .fixtures()
        .revoked_pat("alice")
        .unwrap()
        .expose_secret()
        .to_owned();
    for token in [revoked.as_str(), "not-a-token"] {
        let r = h.get(token, "/workspaces").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
    }
}

#[tokio::test]
async fn workspaces_list_pages_to_the_end_and_membership_is_enforced() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let mut seen = Vec::new();
    let mut path = "/workspaces?limit=1".to_owned();
    loop {
        let page = h.get_json(&alice, &path).await;
        assert_eq!(page["pagination"]["total_count"], 2);
        for w in page["workspaces"].as_array().unwrap() {
            seen.push(w["slug"].as_str().unwrap().to_owned());
        }
        match page["pagination"]["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["pagination"]["has_more_results"], true);
                path = format!("/workspaces?limit=1&cursor={c}");
            }
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["acme-studio", "alice-personal"]);

    let carol = h.get_json(&h.pat("carol"), "/workspaces").await;
    assert_eq!(carol["workspaces"], json!([]));

    let r = h.get(&alice, &format!("/workspaces/{BOB_SANDBOX}")).await;
    assert_problem(r, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    let r = h
        .get(&alice, "/workspaces/0f000000-0000-4000-8000-000000000000")
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "WORKSPACE_NOT_FOUND").await;
    let r = h.get(&alice, "/workspaces/not-a-uuid").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["path", "workspace_id"]));
    assert_eq!(body["detail"][0]["type"], "uuid_parsing");

    for bad in ["limit=0", "limit=101", "limit=x", "cursor=%%%"] {
        let r = h.get(&alice, &format!("/workspaces?{bad}")).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn models_filter_by_modality_capability_and_text() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let names = |v: &Value| each(&v["models"], "name");
    let three_d = h
        .get_json(
            &alice,
            &format!("/workspaces/{ACME}/models?modality=three_d"),
        )
        .await;
    assert!(
        three_d["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["modality"] == "three_d")
    );
    assert_eq!(names(&three_d), ["Meshy 5", "Tripo 2.5"]);
    let cases = [
        ("inpainting", "FLUX.1 Fill"),
        ("style_reference", "FLUX.2 Pro"),
        ("text_to_3d", "Meshy 5"),
        ("lipsync", "Sync Lipsync 2"),
    ];
    for (cap, expected) in cases {
        let list = h
            .get_json(
                &alice,
                &format!("/workspaces/{ACME}/models?capability={cap}&limit=100"),
            )
            .await;
        assert!(
            names(&list).contains(&expected.to_owned()),
            "{cap}: {:?}",
            names(&list)
        );
    }
    let both = h
        .get_json(
            &alice,
            &format!("/workspaces/{ACME}/models?capability=inpainting&capability=negative_prompt"),
        )
        .await;
    assert_eq!(names(&both), ["Stable Diffusion XL"]);
    let search = h
        .get_json(&alice, &format!("/workspaces/{ACME}/models?search=veo"))
        .await;
    assert_eq!(names(&search), ["Veo 3"]);
    let r = h
        .get(
            &alice,
            &format!("/workspaces/{ACME}/models?capability=telepathy"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = h
        .get(&alice, &format!("/workspaces/{ACME}/models?modality=smell"))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // The custom style exists only where the fixtures put it.
    let detail = h
        .get_json(&alice, &format!("/workspaces/{ACME}/models/{ACME_STYLE}"))
        .await;
    assert_eq!(detail["model"]["name"], "Acme Product Style");
    assert_eq!(detail["model"]["capabilities"]["inpainting"], false);
    let r = h
        .get(
            &alice,
            &format!("/workspaces/{ALICE_PERSONAL}/models/{ACME_STYLE}"),
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "MODEL_NOT_FOUND").await;
    let fill = h
        .get_json(&alice, &format!("/workspaces/{ACME}/models/{FLUX_FILL}"))
        .await;
    assert_eq!(fill["model"]["capabilities"]["inpainting"], true);
    assert!(fill["model"]["prompt_format"].is_string());
}

#[tokio::test]
async fn bad_bodies_get_every_problem_in_one_422_and_create_nothing() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let path = format!("/workspaces/{ACME}/inferences");
    let r = h
        .post(
            &alice,
            &path,
            &json!({"batch_size": 17, "prompt": 5, "guidance_files": [{"type": "pose"}]}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    let items: Vec<(Value, String)> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["loc"].clone(), d["type"].as_str().unwrap().to_owned()))
        .collect();
    assert!(
        items.contains(&(json!(["body", "model_id"]), "missing".into())),
        "{items:?}"
    );
    assert!(items.contains(&(json!(["body", "batch_size"]), "less_than_equal".into())));
    assert!(items.contains(&(json!(["body", "prompt"]), "string_type".into())));
    assert!(items.contains(&(
        json!(["body", "guidance_files", 0, "file_id"]),
        "missing".into()
    )));

    let raw = h
        .http
        .post(h.api(&path))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{\"model_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        raw.json::<Value>().await.unwrap()["detail"][0]["type"],
        "json_invalid"
    );

    let r = h
        .post(
            &alice,
            &path,
            &json!({"model_id": "0f000000-0000-4000-8000-000000000000", "prompt": "x"}),
            None,
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "MODEL_NOT_FOUND").await;

    // Model-specific rules: Kling makes 5 or 10 s clips; FLUX.1 Fill needs an init image.
    let r = h
        .post(
            &alice,
            &path,
            &json!({"model_id": KLING, "prompt": "x", "duration_seconds": 7}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = h
        .post(
            &alice,
            &path,
            &json!({"model_id": FLUX_FILL, "prompt": "x"}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let state = h.state().await;
    assert_eq!(state["counters"]["runs_created"], 0);
    assert_eq!(state["workspaces"][0]["reserved_creative_units"], 0.0);
}

#[tokio::test]
async fn a_run_reserves_its_estimate_then_charges_the_actual_price() {
    // Long enough that the reservation is still there when we look, whatever the machine's load.
    let h = Harness::with(layer_sim::SimConfig {
        run_duration: std::time::Duration::from_millis(1500),
        ..layer_sim::SimConfig::for_tests()
    })
    .await;
    let alice = h.pat("alice");
    let before = h.workspace(&alice, ACME).await;
    assert_eq!(before["balance_creative_units"], 1000.0);
    let body = json!({"model_id": FLUX, "prompt": "a lighthouse", "batch_size": 2, "width": 640, "height": 480, "seed": 7});
    let estimate = h
        .post_ok(
            &alice,
            &format!("/workspaces/{ACME}/inferences/estimate"),
            &body,
        )
        .await;
    assert_eq!(estimate["estimated_price_creative_units"], 1.0);
    assert_eq!(estimate["has_sufficient_creative_units"], true);

    let run = h.execute(&alice, ACME, body.clone()).await;
    assert_eq!(run["status"], "in_progress");
    assert_eq!(run["estimated_price_creative_units"], 1.0);
    assert_eq!(run["normalized_parameters"]["width"], 640);
    assert!(run["poll_interval_seconds"].as_u64().unwrap() >= 1);
    let during = h.workspace(&alice, ACME).await;
    assert_eq!(during["reserved_creative_units"], 1.0);
    assert_eq!(during["available_creative_units"], 999.0);
    assert_eq!(during["balance_creative_units"], 1000.0);

    let id = run["inference_id"].as_str().unwrap();
    let done = h.wait_inference(&alice, ACME, id).await;
    assert_eq!(done["status"], "complete");
    assert_eq!(done["actual_price_creative_units"], 1.0);
    assert!(done["poll_interval_seconds"].is_null());
    assert!(done["completed_at"].is_string());
    let after = h.workspace(&alice, ACME).await;
    assert_eq!(after["balance_creative_units"], 999.0);
    assert_eq!(after["reserved_creative_units"], 0.0);

    let outputs = done["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    for out in outputs {
        assert_eq!(out["content_type"], "image/png");
        assert_eq!(
            (out["width"].as_u64(), out["height"].as_u64()),
            (Some(640), Some(480))
        );
        let bytes = h.fetch_bytes(out["url"].as_str().unwrap()).await;
        assert_eq!(bytes.len() as u64, out["file_size_bytes"].as_u64().unwrap());
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(
            u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]),
            640
        );
        let preview = h.fetch(out["preview_url"].as_str().unwrap()).await;
        assert_eq!(preview.headers()["content-type"], "image/png");
    }
    // Same seed, same pictures: a second simulator renders the same bytes.
    let first = h.fetch_bytes(outputs[0]["url"].as_str().unwrap()).await;
    let h2 = Harness::start().await;
    let again = h2.execute(&h2.pat("alice"), ACME, body).await;
    let again = h2
        .wait_inference(
            &h2.pat("alice"),
            ACME,
            again["inference_id"].as_str().unwrap(),
        )
        .await;
    let second = h2
        .fetch_bytes(again["outputs"][0]["url"].as_str().unwrap())
        .await;
    assert_eq!(first, second);
}

#[tokio::test]
async fn other_modalities_produce_real_files() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let video = h
        .execute(
            &alice,
            ACME,
            json!({"model_id": KLING, "prompt": "waves", "batch_size": 1, "duration_seconds": 5}),
        )
        .await;
    let mesh = h.execute(&alice, ACME, json!({"model_id": MESHY, "prompt": "a chair", "batch_size": 1, "include_textures": true})).await;
    let speech = h.execute(&alice, ACME, json!({"model_id": TTS, "prompt": "Hello there, welcome to the demo.", "batch_size": 1})).await;
    assert_eq!(mesh["estimated_price_creative_units"], 25.0);
    let video = h
        .wait_inference(&alice, ACME, video["inference_id"].as_str().unwrap())
        .await;
    let mesh = h
        .wait_inference(&alice, ACME, mesh["inference_id"].as_str().unwrap())
        .await;
    let speech = h
        .wait_inference(&alice, ACME, speech["inference_id"].as_str().unwrap())
        .await;
    assert_eq!(video["actual_price_creative_units"], 18.0); // 90 % of 20
    assert_eq!(mesh["actual_price_creative_units"], 22.5);
    let fetch = |v: &Value| {
        h.http
            .get(v["outputs"][0]["url"].as_str().unwrap().to_owned())
            .send()
    };
    let mp4 = fetch(&video).await.unwrap().bytes().await.unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    assert_eq!(video["outputs"][0]["duration_seconds"], 5.0);
    assert_eq!(video["outputs"][0]["content_type"], "video/mp4");
    let glb = fetch(&mesh).await.unwrap().bytes().await.unwrap();
    assert_eq!(&glb[..4], b"glTF");
    assert_eq!(mesh["outputs"][0]["content_type"], "model/gltf-binary");
    let wav = fetch(&speech).await.unwrap().bytes().await.unwrap();
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(
        wav.len() as u64,
        speech["outputs"][0]["file_size_bytes"].as_u64().unwrap()
    );
    assert!(speech["outputs"][0]["preview_url"].is_null());
}

#[tokio::test]
async fn insufficient_balance_is_402_and_creates_nothing() {
    let h = Harness::start().await;
    let bob = h.pat("bob");
    let path = format!("/workspaces/{BOB_SANDBOX}/inferences");
    let r = h
        .post(&bob, &path, &json!({"model_id": FLUX, "prompt": "x"}), None)
        .await;
    assert_problem(r, StatusCode::PAYMENT_REQUIRED, "INSUFFICIENT_BALANCE").await;
    let est = h
        .post_ok(
            &bob,
            &format!("{path}/estimate"),
            &json!({"model_id": FLUX, "prompt": "x"}),
        )
        .await;
    assert_eq!(est["has_sufficient_creative_units"], false);
    assert_eq!(est["estimated_remaining_balance_creative_units"], -1.0);
    let ws = h.workspace(&bob, BOB_SANDBOX).await;
    assert_eq!(ws["reserved_creative_units"], 0.0);
    assert_eq!(h.state().await["counters"]["runs_created"], 0);
    // Three 1-image runs fit in 3 CU; the fourth does not while they are reserved.
    for _ in 0..3 {
        h.execute(
            &bob,
            BOB_SANDBOX,
            json!({"model_id": FLUX, "prompt": "SIM_HOLD", "batch_size": 1}),
        )
        .await;
    }
    let r = h
        .post(
            &bob,
            &path,
            &json!({"model_id": FLUX, "prompt": "x", "batch_size": 1}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::PAYMENT_REQUIRED);
}

#[tokio::test]
async fn cancel_releases_the_reservation_and_is_idempotent() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let run = h
        .execute(
            &alice,
            ACME,
            json!({"model_id": FLUX, "prompt": "SIM_HOLD"}),
        )
        .await;
    let id = run["inference_id"].as_str().unwrap();
    assert_eq!(
        h.workspace(&alice, ACME).await["reserved_creative_units"],
        4.0
    );
    let cancel = format!("/workspaces/{ACME}/inferences/{id}/cancel");
    let cancelled = h.post_ok(&alice, &cancel, &json!({})).await;
    assert_eq!(cancelled["status"], "cancelled");
    let ws = h.workspace(&alice, ACME).await;
    assert_eq!(ws["reserved_creative_units"], 0.0);
    assert_eq!(ws["balance_creative_units"], 1000.0);
    assert_eq!(
        h.post_ok(&alice, &cancel, &json!({})).await["status"],
        "cancelled"
    );
    // Bob, a member of the same workspace, sees it; Alice's other workspace does not have it.
    let seen = h
        .get_json(
            &h.pat("bob"),
            &format!("/workspaces/{ACME}/inferences/{id}"),
        )
        .await;
    assert_eq!(seen["status"], "cancelled");
    let r = h
        .get(
            &alice,
            &format!("/workspaces/{ALICE_PERSONAL}/inferences/{id}"),
        )
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "RUN_NOT_FOUND").await;

    let done = h
        .execute(
            &alice,
            ACME,
            json!({"model_id": FLUX, "prompt": "x", "batch_size": 1}),
        )
        .await;
    let did = done["inference_id"].as_str().unwrap();
    h.wait_inference(&alice, ACME, did).await;
    let r = h
        .post(
            &alice,
            &format!("/workspaces/{ACME}/inferences/{did}/cancel"),
            &json!({}),
            None,
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT, "RUN_NOT_CANCELLABLE").await;
}

#[tokio::test]
async fn the_sixth_unfinished_run_is_refused_with_retry_after() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = if i % 2 == 0 {
            json!({"model_id": FLUX, "prompt": "SIM_HOLD", "batch_size": 1})
        } else {
            json!({"inputs": {"product_image": null, "scene_prompt": "SIM_HOLD"}})
        };
        if i % 2 == 0 {
            ids.push(
                h.execute(&alice, ACME, body).await["inference_id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            let file = h.upload(&alice, ACME, "image/png", vec![7u8; 64]).await;
            let body = json!({"inputs": {"product_image": file, "scene_prompt": "SIM_HOLD", "num_variations": 1}});
            let run = h
                .post_ok(
                    &alice,
                    &format!("/workspaces/{ACME}/workflows/{PRODUCT_SHOT}/runs"),
                    &body,
                )
                .await;
            assert_eq!(run["status"], "pending");
        }
    }
    let r = h
        .post(
            &alice,
            &format!("/workspaces/{ACME}/inferences"),
            &json!({"model_id": FLUX, "prompt": "x", "batch_size": 1}),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(code(&r.json().await.unwrap()), "RATE_LIMITED");
    // The limit is per user and workspace: Bob in the same workspace, Alice elsewhere, still run.
    h.execute(
        &h.pat("bob"),
        ACME,
        json!({"model_id": FLUX, "prompt": "x", "batch_size": 1}),
    )
    .await;
    h.execute(
        &alice,
        ALICE_PERSONAL,
        json!({"model_id": FLUX, "prompt": "x", "batch_size": 1}),
    )
    .await;

    let state = h.state().await;
    let alice_acme = state["concurrency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == "alice" && c["workspace_id"] == ACME)
        .unwrap()
        .clone();
    assert_eq!(alice_acme["max_unfinished_runs"], 5);
    assert_eq!(state["counters"]["rate_limited"], 1);

    // Finishing one frees a slot.
    let fin = h
        .http
        .post(h.url(&format!("/_sim/runs/{}/finish", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(fin.status(), StatusCode::OK);
    h.execute(
        &alice,
        ACME,
        json!({"model_id": FLUX, "prompt": "x", "batch_size": 1}),
    )
    .await;
}

#[tokio::test]
async fn idempotency_key_replays_the_same_run_and_refuses_a_different_body() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let path = format!("/workspaces/{ACME}/inferences");
    let body = json!({"model_id": FLUX, "prompt": "a fox SIM_HOLD", "batch_size": 2});
    let first = h.post(&alice, &path, &body, Some("key-1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    // Same body with keys in another order is the same request.
    let reordered = json!({"batch_size": 2, "prompt": "a fox SIM_HOLD", "model_id": FLUX});
    let second = h.post(&alice, &path, &reordered, Some("key-1")).await;
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["inference_id"], second["inference_id"]);
    let ws = h.workspace(&alice, ACME).await;
    assert_eq!(ws["reserved_creative_units"], 2.0);
    assert_eq!(h.state().await["counters"]["runs_created"], 1);

    let r = h
        .post(
            &alice,
            &path,
            &json!({"model_id": FLUX, "prompt": "a wolf"}),
            Some("key-1"),
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT, "IDEMPOTENCY_KEY_REUSED").await;
    // Keys belong to one user: Bob's key-1 is a new run.
    let bob = h.post(&h.pat("bob"), &path, &body, Some("key-1")).await;
    let bob: Value = bob.json().await.unwrap();
    assert_ne!(bob["inference_id"], first["inference_id"]);
    assert_eq!(h.state().await["counters"]["runs_created"], 2);
}

#[tokio::test]
async fn prompt_triggers_fail_runs_without_charge() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    for code_word in [
        "CONTENT_POLICY_VIOLATION",
        "INPUT_GUARDRAIL_VIOLATION",
        "NO_MEDIA_GENERATED",
        "PROMPT_INTELLECTUAL_PROPERTY",
    ] {
        let run = h
            .execute(
                &alice,
                ACME,
                json!({"model_id": FLUX, "prompt": format!("x {code_word}")}),
            )
            .await;
        let done = h
            .wait_inference(&alice, ACME, run["inference_id"].as_str().unwrap())
            .await;
        assert_eq!(done["status"], "failed");
        assert_eq!(done["error_code"], code_word);
        assert!(done["error"].is_string());
        assert!(done["outputs"].is_null());
    }
    let ws = h.workspace(&alice, ACME).await;
    assert_eq!(ws["balance_creative_units"], 1000.0);
    assert_eq!(ws["reserved_creative_units"], 0.0);
}

#[tokio::test]
async fn product_shot_workflow_runs_through_its_steps() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let list = h
        .get_json(
            &alice,
            &format!("/workspaces/{ACME}/workflows?search=product"),
        )
        .await;
    let wf = &list["workflows"][0];
    assert_eq!(wf["name"], "Product shot");
    let input_names = each(&wf["inputs"], "name");
    assert!(input_names.contains(&"product_image".into()));
    assert!(input_names.contains(&"scene_prompt".into()));
    assert_eq!(wf["inputs"][0]["type"], "file");
    assert!(wf["inputs"][0]["value_schema"].is_object());

    let file = h.upload(&alice, ACME, "image/png", vec![1u8; 256]).await;
    let base = format!("/workspaces/{ACME}/workflows/{PRODUCT_SHOT}");
    let inputs = json!({"product_image": file, "scene_prompt": "on marble, morning light", "num_variations": 3});
    let est = h
        .post_ok(
            &alice,
            &format!("{base}/estimate"),
            &json!({"inputs": inputs}),
        )
        .await;
    assert_eq!(est["estimated_price_creative_units"], 19.0);
    assert_eq!(est["output_counts"][0]["count"], 3);
    assert_eq!(est["output_counts"][0]["output"]["name"], "shots");

    let bad = h
        .post(
            &alice,
            &format!("{base}/runs"),
            &json!({"inputs": {"scene_prompt": "x", "colour": "red"}}),
            None,
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bad: Value = bad.json().await.unwrap();
    let types = each(&bad["detail"], "type");
    assert!(
        types.contains(&"missing".into()) && types.contains(&"extra_forbidden".into()),
        "{types:?}"
    );

    let run = h
        .post_ok(
            &alice,
            &format!("{base}/runs"),
            &json!({"inputs": inputs, "session_name": "shoot"}),
        )
        .await;
    assert_eq!(run["status"], "pending");
    assert!(run["session_id"].is_string());
    let id = run["run_id"].as_str().unwrap();
    let done = h.wait_workflow_run(&alice, ACME, PRODUCT_SHOT, id).await;
    assert_eq!(done["status"], "success");
    assert_eq!(done["outputs"].as_array().unwrap().len(), 3);
    assert_eq!(done["outputs"][0]["object_type"], "file");
    assert!(
        done["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "success")
    );
    assert_eq!(done["actual_price_creative_units"], 18.05);
    let ws = h.workspace(&alice, ACME).await;
    assert_eq!(ws["balance_creative_units"], 981.95);
    // An output is a file id a later run can take.
    let again = json!({"inputs": {"product_image": done["outputs"][0]["file_id"], "scene_prompt": "beach"}});
    h.post_ok(&alice, &format!("{base}/estimate"), &again).await;
}

#[tokio::test]
async fn a_refused_generation_fails_the_workflow_with_refusals() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let file = h.upload(&alice, ACME, "image/jpeg", vec![2u8; 100]).await;
    let base = format!("/workspaces/{ACME}/workflows/{PRODUCT_SHOT}");
    let run = h
        .post_ok(&alice, &format!("{base}/runs"), &json!({"inputs": {"product_image": file, "scene_prompt": "INPUT_GUARDRAIL_VIOLATION"}}))
        .await;
    let done = h
        .wait_workflow_run(&alice, ACME, PRODUCT_SHOT, run["run_id"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "failure");
    assert_eq!(done["error_code"], "BlueprintInvalidRuntimeValueError");
    assert_eq!(done["refusals"][0]["code"], "INPUT_GUARDRAIL_VIOLATION");
    assert_eq!(
        done["refusals"][0]["guardrails"][0]["category"],
        "ip_trademark_infringement"
    );
    let statuses = each(&done["steps"], "status");
    assert_eq!(statuses, ["success", "failure", "cancelled", "cancelled"]);
    assert_eq!(
        h.workspace(&alice, ACME).await["balance_creative_units"],
        1000.0
    );

    // Cancel a held workflow run: unfinished steps are cancelled, nothing charged.
    let held = h
        .post_ok(
            &alice,
            &format!("{base}/runs"),
            &json!({"inputs": {"product_image": file, "scene_prompt": "SIM_HOLD"}}),
        )
        .await;
    let rid = held["run_id"].as_str().unwrap();
    // Past the first tenth of its time a run is `running`, with a step under way.
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let live = h.get_json(&alice, &format!("{base}/runs/{rid}")).await;
    assert_eq!(live["status"], "running");
    assert!(live["poll_interval_seconds"].as_u64().unwrap() >= 1);
    let steps = each(&live["steps"], "status");
    assert!(steps.contains(&"running".into()), "{live}");
    assert!(live["outputs"].is_null());
    let cancelled = h
        .post_ok(&alice, &format!("{base}/runs/{rid}/cancel"), &json!({}))
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(
        h.workspace(&alice, ACME).await["reserved_creative_units"],
        0.0
    );
    let r = h
        .get(
            &alice,
            &format!(
                "/workspaces/{ACME}/workflows/c0000000-0000-4000-8000-000000000002/runs/{rid}"
            ),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_oversized_body_is_a_413_problem() {
    let h = Harness::start().await;
    let body = json!({"model_id": FLUX, "prompt": "x".repeat(3 * 1024 * 1024)});
    let r = h
        .post(
            &h.pat("alice"),
            &format!("/workspaces/{ACME}/inferences"),
            &body,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(code(&r.json().await.unwrap()), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let r = h.get(&alice, "/nothing-here").await;
    assert_problem(r, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    let r = h
        .request(reqwest::Method::DELETE, &alice, "/workspaces")
        .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn concurrent_executes_never_exceed_five_and_share_one_keyed_run() {
    let h = std::sync::Arc::new(Harness::start().await);
    let alice = h.pat("alice");
    let path = format!("/workspaces/{ACME}/inferences");
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let (h, alice, path) = (h.clone(), alice.clone(), path.clone());
            tokio::spawn(async move {
                let body =
                    json!({"model_id": FLUX, "prompt": format!("SIM_HOLD {i}"), "batch_size": 1});
                h.post(&alice, &path, &body, None).await.status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        7
    );
    let state = h.state().await;
    assert_eq!(state["concurrency"][0]["max_unfinished_runs"], 5);

    // Bob fires the same keyed request eight times at once: one run, one reservation.
    let bob = h.pat("bob");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (h, bob, path) = (h.clone(), bob.clone(), path.clone());
            tokio::spawn(async move {
                let body = json!({"model_id": FLUX, "prompt": "SIM_HOLD same", "batch_size": 1});
                let r = h.post(&bob, &path, &body, Some("same-key")).await;
                assert_eq!(r.status(), StatusCode::OK);
                r.json::<Value>().await.unwrap()["inference_id"].clone()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    let state = h.state().await;
    assert_eq!(state["counters"]["runs_created"], 6);
    assert_eq!(state["workspaces"][0]["reserved_creative_units"], 6.0);
}
