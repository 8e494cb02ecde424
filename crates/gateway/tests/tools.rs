//! The tools over real MCP and real HTTP, against the simulator: the catalogue, both
//! lifecycles, and every documented error, checking the simulator's state for side effects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    ACME, ALICE_PERSONAL, BOB_SANDBOX, CHARACTER_TURNAROUND, Env, FLUX_2_PRO, MISSING, wait_forge,
};
use serde_json::{Value, json};

const TOOLS: [&str; 18] = [
    "get_instructions",
    "get_workflow_instructions",
    "get_forge_instructions",
    "list_workspaces",
    "get_workspace",
    "get_model_recommendations",
    "list_models",
    "get_model",
    "list_workflows",
    "estimate_workflow_price",
    "execute_workflow",
    "get_workflow_run",
    "cancel_workflow_run",
    "estimate_forge_price",
    "execute_forge",
    "get_forge_run",
    "request_file_upload_url",
    "upload_file",
];

#[tokio::test]
async fn the_catalogue_has_exactly_the_18_tools_with_schemas_and_annotations() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let answer = client.list_tools().await;
    let tools = answer.result()["tools"].as_array().unwrap().clone();
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        assert!(name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert!(
            tool["description"].as_str().unwrap().len() > 80,
            "{name} has an actionable description"
        );
        assert_eq!(tool["inputSchema"]["type"], "object", "{name}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}");
        let a = &tool["annotations"];
        let read_only =
            name.starts_with("get_") || name.starts_with("list_") || name.starts_with("estimate_");
        assert_eq!(a["readOnlyHint"], read_only, "{name}");
        assert_eq!(
            a["destructiveHint"],
            name == "cancel_workflow_run",
            "{name}"
        );
        assert_eq!(a["openWorldHint"], name == "upload_file", "{name}");
        if read_only || name == "cancel_workflow_run" {
            assert_eq!(a["idempotentHint"], true, "{name}");
        }
        // Ids are UUIDs in every schema.
        for (prop, schema) in tool["inputSchema"]["properties"].as_object().unwrap() {
            if prop.ends_with("_id") {
                assert_eq!(schema["format"], "uuid", "{name}.{prop}");
            }
        }
    }
    let forge = tools.iter().find(|t| t["name"] == "execute_forge").unwrap();
    assert_eq!(
        forge["inputSchema"]["properties"]["batch_size"]["maximum"],
        16
    );
    assert_eq!(
        forge["inputSchema"]["properties"]["batch_size"]["default"],
        4
    );
    assert_eq!(
        forge["inputSchema"]["properties"]["guidance_files"]["maxItems"],
        20
    );
    assert_eq!(
        forge["inputSchema"]["required"],
        json!(["workspace_id", "model_id"])
    );
    env.shutdown().await;
}

#[test]
#[should_panic(expected = "does not match the output schema")]
fn the_output_schema_check_catches_a_wrong_shape() {
    common::assert_conforms(
        "list_workspaces",
        &json!({"workspaces": "not a list", "has_more_results": true}),
    );
}

#[test]
#[should_panic(expected = "does not match the output schema")]
fn the_output_schema_check_validates_formats() {
    common::assert_conforms(
        "get_workspace",
        &json!({"workspace_id": "nope", "name": "x", "balance_creative_units": 1,
        "reserved_creative_units": 0, "available_creative_units": 1}),
    );
}

#[tokio::test]
async fn instructions_tools_return_the_guides() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    for (tool, needle) in [
        ("get_instructions", "Creative Units"),
        ("get_workflow_instructions", "cancel_workflow_run"),
        ("get_forge_instructions", "guidance_files"),
    ] {
        let s = client.ok(tool, json!({})).await;
        assert!(
            s["instructions"].as_str().unwrap().contains(needle),
            "{tool}"
        );
    }
    env.shutdown().await;
}

#[tokio::test]
async fn forge_lifecycle_from_discovery_to_a_png() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let workspaces = client.ok("list_workspaces", json!({})).await;
    let names: Vec<&str> = workspaces["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let models = client
        .ok(
            "list_models",
            json!({"workspace_id": ACME, "modality": "image"}),
        )
        .await;
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["model_id"] == FLUX_2_PRO)
    );
    let detail = client
        .ok(
            "get_model",
            json!({"workspace_id": ACME, "model_id": FLUX_2_PRO}),
        )
        .await;
    assert!(detail["capabilities"].is_object());
    let recs = client
        .ok("get_model_recommendations", json!({"workspace_id": ACME}))
        .await;
    let categories = recs["categories"].as_array().unwrap();
    assert!(
        categories
            .iter()
            .any(|c| c["use_case"] == "inpainting" && c["recommended"].is_object()),
        "{recs}"
    );
    assert!(categories.iter().any(|c| c["modality"] == "three_d"));

    let before = env.available(ACME).await;
    let args = json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "prompt": "a red fox in snow", "batch_size": 2});
    let estimate = client.ok("estimate_forge_price", args.clone()).await;
    let price = estimate["estimated_price_creative_units"].as_f64().unwrap();
    assert!(price > 0.0 && estimate["has_sufficient_creative_units"] == true);
    let started = client.ok("execute_forge", args).await;
    assert_eq!(started["status"], "in_progress");
    assert!(started["poll_interval_seconds"].as_u64().is_some());
    let id = started["inference_id"].as_str().unwrap().to_owned();
    let done = wait_forge(&mut client, ACME, &id).await;
    let run = done.structured();
    assert_eq!(run["status"], "complete", "{run}");
    let outputs = run["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2);
    let charged = run["actual_price_creative_units"].as_f64().unwrap();
    // Content blocks: the summary and a resource link per output.
    let content = done.result()["content"].as_array().unwrap();
    let links: Vec<&Value> = content
        .iter()
        .filter(|c| c["type"] == "resource_link")
        .collect();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["mimeType"], "image/png");
    assert!(links[0]["size"].as_u64().unwrap() > 0);
    let summary = content[0]["text"].as_str().unwrap();
    assert!(
        summary.contains("made 2 images")
            && summary.contains("Charged")
            && summary.contains("available"),
        "{summary}"
    );
    // The output really is a PNG.
    let bytes = env.download(outputs[0]["url"].as_str().unwrap()).await;
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let after = env.available(ACME).await;
    assert!(
        (before - after - charged).abs() < 1e-6,
        "charged {charged}: {before} -> {after}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn workflow_lifecycle_with_cancel_restores_the_balance() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let workflows = client
        .ok("list_workflows", json!({"workspace_id": ACME}))
        .await;
    assert!(
        workflows["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["workflow_id"] == CHARACTER_TURNAROUND)
    );
    let inputs = json!({"character_prompt": "a knight in green armour SIM_HOLD"});
    let estimate = client
        .ok(
            "estimate_workflow_price",
            json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND, "inputs": inputs}),
        )
        .await;
    assert!(estimate["estimated_price_creative_units"].as_f64().unwrap() > 0.0);
    let before = env.available(ACME).await;
    let started = client
        .ok(
            "execute_workflow",
            json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND, "inputs": inputs}),
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    assert!(
        env.available(ACME).await < before,
        "the estimate is reserved"
    );
    let ids = json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND, "run_id": run_id});
    let polled = client.ok("get_workflow_run", ids.clone()).await;
    assert!(
        ["pending", "running"].contains(&polled["status"].as_str().unwrap()),
        "{polled}"
    );
    let cancelled = client.ok("cancel_workflow_run", ids.clone()).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        cancelled["summary"]
            .as_str()
            .unwrap()
            .contains("Nothing was charged")
    );
    assert!(
        (env.available(ACME).await - before).abs() < 1e-6,
        "balance restored"
    );
    // Cancelling again is harmless.
    assert_eq!(
        client.ok("cancel_workflow_run", ids).await["status"],
        "cancelled"
    );

    // A run that finished cannot be cancelled; its result shows the outputs.
    let inputs = json!({"character_prompt": "a knight in green armour"});
    let started = client
        .ok(
            "execute_workflow",
            json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND, "inputs": inputs}),
        )
        .await;
    let ids = json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND, "run_id": started["run_id"]});
    let mut finished = None;
    for _ in 0..100 {
        let answer = client.call("get_workflow_run", ids.clone()).await;
        if answer.structured()["status"] == "success" {
            finished = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = finished.expect("the run succeeds");
    common::assert_conforms("get_workflow_run", finished.structured());
    let content = finished.result()["content"].as_array().unwrap();
    assert!(
        content.iter().any(|c| c["type"] == "resource_link"),
        "{content:?}"
    );
    assert!(content[0]["text"].as_str().unwrap().contains("Charged"));
    let again = client.fails("cancel_workflow_run", ids).await;
    assert_eq!(again["code"], "RUN_NOT_CANCELLABLE");
    assert_eq!(again["status"], 409);
    env.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_documented_codes_and_creates_nothing() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let runs = env.runs_created().await;

    // Unknown tool: a JSON-RPC error, not a tool result.
    let answer = client.call("make_me_a_sandwich", json!({})).await;
    assert_eq!(answer.error()["code"], -32602);
    assert!(
        answer.error()["message"]
            .as_str()
            .unwrap()
            .contains("execute_forge")
    );

    let cases = [
        (
            "get_workspace",
            json!({"workspace_id": "not-a-uuid"}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "execute_forge",
            json!({"workspace_id": ACME, "model_id": "123"}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "execute_forge",
            json!({"workspace_id": ACME}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "execute_forge",
            json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "batch_size": 99}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "execute_forge",
            json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "colour": "red"}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "execute_forge",
            json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "options": {"quality": "ultra"}}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "execute_workflow",
            json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "get_forge_run",
            json!({"workspace_id": ACME, "inference_id": "x"}),
            "INVALID_INPUTS",
            400,
        ),
        (
            "get_workspace",
            json!({"workspace_id": MISSING}),
            "WORKSPACE_NOT_FOUND",
            404,
        ),
        (
            "execute_forge",
            json!({"workspace_id": ACME, "model_id": MISSING, "prompt": "x"}),
            "MODEL_NOT_FOUND",
            404,
        ),
        (
            "get_model",
            json!({"workspace_id": ACME, "model_id": MISSING}),
            "MODEL_NOT_FOUND",
            404,
        ),
        (
            "execute_workflow",
            json!({"workspace_id": ACME, "workflow_id": MISSING, "inputs": {}}),
            "WORKFLOW_NOT_FOUND",
            404,
        ),
        (
            "get_forge_run",
            json!({"workspace_id": ACME, "inference_id": MISSING}),
            "RUN_NOT_FOUND",
            404,
        ),
        (
            "get_workflow_run",
            json!({"workspace_id": ACME, "workflow_id": CHARACTER_TURNAROUND, "run_id": MISSING}),
            "RUN_NOT_FOUND",
            404,
        ),
    ];
    for (tool, args, code, status) in cases {
        let s = client.fails(tool, args.clone()).await;
        assert_eq!(s["code"], code, "{tool} {args}: {s}");
        assert_eq!(s["status"], status, "{tool} {args}");
        assert!(s["message"].as_str().unwrap().len() > 20, "{s}");
        assert!(s.get("request_id").is_some(), "{s}");
    }
    assert_eq!(
        env.runs_created().await,
        runs,
        "nothing was created upstream"
    );

    // Bob is not a member of Alice's personal workspace.
    let mut bob = env.session(&env.bob.clone()).await;
    let s = bob
        .fails("get_workspace", json!({"workspace_id": ALICE_PERSONAL}))
        .await;
    assert_eq!(s["code"], "FORBIDDEN");
    // Bob's sandbox has 3 Creative Units.
    let s = bob
        .fails("execute_forge", json!({"workspace_id": BOB_SANDBOX, "model_id": FLUX_2_PRO, "prompt": "x", "batch_size": 16}))
        .await;
    assert_eq!(s["code"], "INSUFFICIENT_BALANCE", "{s}");
    assert_eq!(s["status"], 402);
    assert!(
        s["request_id"].is_string(),
        "the upstream request id is kept: {s}"
    );
    assert_eq!(env.runs_created().await, runs);
    env.shutdown().await;
}

#[tokio::test]
async fn upstream_failures_are_retryable_upstream_unavailable() {
    let env = Env::start_with(|c| {
        c.upstream_max_attempts = 1;
        c.upstream_request_timeout = Duration::from_millis(500);
    })
    .await;
    let mut client = env.session(&env.alice.clone()).await;
    env.add_fault(json!({"kind": "error", "status": 503, "path_prefix": "/api/v1/workspaces/"}))
        .await;
    let s = client
        .fails("get_workspace", json!({"workspace_id": ACME}))
        .await;
    assert_eq!(s["code"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(s["status"], 503);
    assert!(s["retry_after_seconds"].as_u64().unwrap() >= 1);
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("retry")
    );
    env.clear_faults().await;
    env.add_fault(json!({"kind": "stall", "path_prefix": "/api/v1/workspaces/"}))
        .await;
    let s = client
        .fails("get_workspace", json!({"workspace_id": ACME}))
        .await;
    assert_eq!(s["code"], "UPSTREAM_UNAVAILABLE", "a timeout: {s}");
    env.clear_faults().await;
    client
        .ok("get_workspace", json!({"workspace_id": ACME}))
        .await;
    env.shutdown().await;
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_execute_return_the_same_run() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let args = json!({"workspace_id": ACME, "model_id": FLUX_2_PRO, "prompt": "a fox", "batch_size": 1,
                      "idempotency_key": "agent-retry-1"});
    let runs = env.runs_created().await;
    let first = client.ok("execute_forge", args.clone()).await;
    let second = client.ok("execute_forge", args).await;
    assert_eq!(first["inference_id"], second["inference_id"]);
    assert_eq!(env.runs_created().await, runs + 1);
    env.shutdown().await;
}

#[tokio::test]
async fn request_file_upload_url_explains_the_upload() {
    let env = Env::start().await;
    let mut client = env.session(&env.alice.clone()).await;
    let s = client
        .ok(
            "request_file_upload_url",
            json!({"workspace_id": ACME, "content_type": "image/png", "file_size_bytes": 68}),
        )
        .await;
    assert!(s["upload_url"].as_str().unwrap().starts_with("http"));
    assert!(
        s["curl"]
            .as_str()
            .unwrap()
            .contains("x-goog-resumable: start")
    );
    assert_eq!(s["steps"].as_array().unwrap().len(), 3);
    // The curl lines work as written.
    let png = b"\x89PNG\r\n\x1a\n"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(7u8, 60))
        .collect::<Vec<u8>>();
    let path = std::env::temp_dir().join(format!("upload-{}.png", uuid::Uuid::new_v4()));
    std::fs::write(&path, &png).unwrap();
    let script = s["curl"]
        .as_str()
        .unwrap()
        .replace("@FILE", &format!("@{}", path.display()));
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stored = env.admin().file_bytes(s["file_id"].as_str().unwrap()).await;
    assert_eq!(
        stored.as_slice(),
        png.as_slice(),
        "the simulator holds the uploaded bytes"
    );

    let s = client
        .fails("request_file_upload_url", json!({"workspace_id": ACME, "content_type": "image/png", "file_size_bytes": 200_000_000}))
        .await;
    assert_eq!(s["code"], "INVALID_INPUTS");
    env.shutdown().await;
}

#[tokio::test]
async fn a_real_rmcp_client_lists_and_calls_tools() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let env = Env::start().await;
    let mut config = StreamableHttpClientTransportConfig::with_uri(env.mcp_url());
    config.auth_header = Some(env.alice.clone());
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    let info = client.peer_info().unwrap();
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("estimate")
    );
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 18);
    let result = client
        .call_tool(
            CallToolRequestParams::new("get_workspace")
                .with_arguments(json!({"workspace_id": ACME}).as_object().cloned().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content.unwrap()["name"], "Acme Studio");
    client.cancel().await.unwrap();
    env.shutdown().await;
}

/// Accepts any token, and records what the gateway asks it to forget.
struct Permissive(std::sync::Mutex<Vec<String>>);

#[async_trait::async_trait]
impl gateway::auth::Authenticator for Permissive {
    async fn authenticate(
        &self,
        token: &gateway::auth::PresentedToken,
    ) -> Result<gateway::auth::Caller, gateway::auth::AuthError> {
        Ok(gateway::auth::Caller::new(
            gateway::auth::UserId::for_pat(token),
            gateway::auth::CredentialKind::Pat,
            token.to_upstream(),
        ))
    }
    async fn forget(&self, token: &layer_api::BearerToken) {
        self.0
            .lock()
            .unwrap()
            .push(token.expose_secret().to_owned());
    }
}

#[tokio::test]
async fn a_token_layer_refuses_during_a_tool_call_is_unauthenticated_and_forgotten() {
    // A cached PAT that Layer stops accepting: the tool says UNAUTHENTICATED and the
    // authenticator drops the token, so the next request is checked afresh (and gets 401).
    let sim = layer_sim::start(layer_sim::SimConfig::for_tests())
        .await
        .unwrap();
    let config = gateway::Config::for_local(([127, 0, 0, 1], 0).into(), sim.api_url().clone());
    let mut services = gateway::Services::from_config(&config).unwrap();
    let permissive = std::sync::Arc::new(Permissive(Default::default()));
    services.authenticator = permissive.clone();
    let gw = gateway::start(config, services).await.unwrap();
    let mut client = common::Raw {
        http: reqwest::Client::new(),
        url: gw.mcp_url(),
        pat: Some("layer_pat_no_longer_valid".into()),
        session: None,
        version: "2025-11-25".into(),
        next_id: 1,
    };
    client.initialize().await;
    let s = client.fails("list_workspaces", json!({})).await;
    assert_eq!(s["code"], "UNAUTHENTICATED");
    assert_eq!(s["status"], 401);
    assert_eq!(
        *permissive.0.lock().unwrap(),
        vec!["layer_pat_no_longer_valid".to_owned()]
    );
    gw.shutdown().await;
    sim.shutdown().await;
}

/// The input schemas are derived from the argument structs; what clients and models see must
/// stay what it was when they were written by hand (same arguments, types, bounds, enums,
/// required lists and descriptions, inline, closed objects). A deliberate change updates
/// `tests/fixtures/tool_input_schemas.json`.
#[test]
fn the_input_schemas_are_the_published_ones() {
    let expected: serde_json::Map<String, Value> =
        serde_json::from_str(include_str!("fixtures/tool_input_schemas.json")).unwrap();
    let catalogue = gateway::Catalogue::new().unwrap();
    let mut names: Vec<&str> = catalogue.names();
    names.sort_unstable();
    let mut listed: Vec<&str> = expected.keys().map(String::as_str).collect();
    listed.sort_unstable();
    assert_eq!(names, listed);
    for tool in catalogue.tools() {
        let actual = Value::Object(tool.input_schema.as_ref().clone());
        let text = actual.to_string();
        assert!(
            !text.contains("$ref") && !text.contains("$defs") && !text.contains("anyOf"),
            "{}: subschemas are inline: {text}",
            tool.name
        );
        assert_eq!(
            actual,
            expected[tool.name.as_ref()],
            "{}: the input schema changed",
            tool.name
        );
    }
}
