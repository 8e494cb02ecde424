//! Real MCP clients from npm and PyPI against a `layer-mcp-gateway serve`
//! process in front of an in-process Layer simulator, authenticating with a PAT header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e_tests::clients::{self, ClientHome, npm_command, run, text};
use e2e_tests::gateway::{GatewayOptions, GatewayProcess};
use e2e_tests::paths::workspace_root;
use e2e_tests::sim::TestSim;
use serde_json::Value;

const ACME: &str = "a0000000-0000-4000-8000-000000000001";

struct Setup {
    sim: TestSim,
    gateway: GatewayProcess,
    pat: String,
}

async fn setup() -> Setup {
    let sim = TestSim::start().await;
    let pat = sim.pat("alice");
    let gateway = GatewayProcess::start(GatewayOptions {
        layer_api_url: sim.sim.api_url().to_string(),
        env: vec![("LAYER_MCP_UPLOAD_ALLOW_HOSTS".into(), sim.host_port())],
        ..GatewayOptions::default()
    })
    .await;
    Setup { sim, gateway, pat }
}

#[tokio::test]
async fn the_inspector_cli_lists_18_tools_and_calls_one() {
    let s = setup().await;
    let home = ClientHome::new("inspector");
    let header = format!("Authorization: Bearer {}", s.pat);
    let url = s.gateway.mcp_url();
    let listed = json_stdout(
        &inspector(
            &home,
            &url,
            &["--method", "tools/list", "--header", &header],
        )
        .await,
        "",
    );
    assert_eq!(listed["tools"].as_array().unwrap().len(), 18);

    let workspace = format!("workspace_id={ACME}");
    let output = inspector(
        &home,
        &url,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "get_workspace",
            "--tool-arg",
            &workspace,
            "--header",
            &header,
        ],
    )
    .await;
    let result = json_stdout(&output, "");
    assert_eq!(result["isError"], false);
    assert_eq!(result["structuredContent"]["name"], "Acme Studio");
    // Without the header: refused.
    let output = inspector(&home, &url, &["--method", "tools/list"]).await;
    assert!(!output.status.success(), "{}", text(&output));
    s.sim.shutdown().await;
}

#[tokio::test]
async fn mcp_remote_with_a_header_lists_the_tools() {
    let s = setup().await;
    let home = ClientHome::new("mcp-remote");
    let (success, log) = clients::mcp_remote_with_header(
        &home,
        &s.gateway.mcp_url(),
        &s.pat,
        Duration::from_secs(120),
    )
    .await;
    assert!(success, "{log}");
    assert!(
        log.contains("Connected to remote server using StreamableHTTPClientTransport"),
        "{log}"
    );
    assert!(log.contains("Tools:"), "{log}");
    for tool in [
        "get_instructions",
        "execute_forge",
        "upload_file",
        "cancel_workflow_run",
    ] {
        assert!(
            log.contains(&format!("\"name\": \"{tool}\"")),
            "{tool}: {log}"
        );
    }
    assert!(log.contains("Exiting OK"), "{log}");
    s.sim.shutdown().await;
}

#[tokio::test]
async fn claude_code_reports_connected() {
    let s = setup().await;
    let home = ClientHome::new("claude");
    let project = home.folder("project");
    let log = add_and_list("claude", &home, &project, &[], &s.gateway.mcp_url(), &s.pat).await;
    assert!(log.contains("layer:") && log.contains("Connected"), "{log}");
    assert!(!log.contains("Failed"), "{log}");

    // A wrong PAT is reported as a failure, not as connected.
    let bad_home = ClientHome::new("claude-bad");
    let log = add_and_list(
        "claude",
        &bad_home,
        bad_home.path(),
        &[],
        &s.gateway.mcp_url(),
        "layer_pat_wrong",
    )
    .await;
    assert!(!log.contains("✔ Connected"), "{log}");
    s.sim.shutdown().await;
}

#[tokio::test]
async fn gemini_cli_reports_connected() {
    let s = setup().await;
    let home = ClientHome::new("gemini");
    let project = home.folder("project");
    // `gemini mcp list` only connects from a trusted folder.
    let gemini_dir = home.folder(".gemini");
    std::fs::write(
        gemini_dir.join("trustedFolders.json"),
        serde_json::json!({ project.to_str().unwrap(): "TRUST_FOLDER" }).to_string(),
    )
    .unwrap();
    let log = add_and_list(
        "gemini",
        &home,
        &project,
        &["-s", "user"],
        &s.gateway.mcp_url(),
        &s.pat,
    )
    .await;
    assert!(
        log.contains("layer:") && log.contains("- Connected"),
        "{log}"
    );
    s.sim.shutdown().await;
}

/// Registers the gateway with a CLI (`claude`, `gemini`) from `dir` as the HTTP server
/// `layer` with `token` as bearer (`scope`: the CLI's scope flags), then has the CLI list
/// its servers: what the list printed.
async fn add_and_list(
    bin: &str,
    home: &ClientHome,
    dir: &std::path::Path,
    scope: &[&str],
    url: &str,
    token: &str,
) -> String {
    let mut add = npm_command(bin, home);
    add.current_dir(dir)
        .args(["mcp", "add"])
        .args(scope)
        .args(["--transport", "http", "layer", url, "--header"])
        .arg(format!("Authorization: Bearer {token}"));
    let output = run(add, Duration::from_secs(120)).await;
    assert!(output.status.success(), "{}", text(&output));
    let mut list = npm_command(bin, home);
    list.current_dir(dir).args(["mcp", "list"]);
    text(&run(list, Duration::from_secs(120)).await)
}

/// The Inspector's CLI against the gateway at `url` over HTTP, with `args` added.
async fn inspector(home: &ClientHome, url: &str, args: &[&str]) -> std::process::Output {
    let mut command = npm_command("mcp-inspector", home);
    command
        .args(["--cli", url, "--transport", "http"])
        .args(args);
    run(command, Duration::from_secs(120)).await
}

/// The JSON a client printed, once it exited successfully (`context` starts the message
/// if it did not).
fn json_stdout(output: &std::process::Output, context: &str) -> Value {
    assert!(output.status.success(), "{context}{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", text(output)))
}

fn script(name: &str) -> std::path::PathBuf {
    workspace_root().join("tests").join("scripts").join(name)
}

/// Checks a lifecycle script's report against what the simulator recorded.
async fn check_lifecycle(sim: &TestSim, report: &Value) {
    assert_eq!(report["tools"], 18, "{report}");
    assert_eq!(report["forge"]["output_is_png"], true, "{report}");
    assert!(report["forge"]["charged"].as_f64().unwrap() > 0.0);
    let wf = &report["workflow"];
    assert_eq!(wf["cancelled_status"], "cancelled", "{report}");
    assert!(
        wf["available_during"].as_f64() < wf["available_before"].as_f64(),
        "reserved while running: {report}"
    );
    assert_eq!(
        wf["available_after"], wf["available_before"],
        "cancel restores the balance: {report}"
    );

    let state = sim.state().await;
    let runs = state["runs"].as_array().unwrap();
    let find = |id: &Value| {
        runs.iter()
            .find(|r| r["id"] == *id)
            .cloned()
            .unwrap_or_else(|| panic!("run {id} in {state}"))
    };
    let forge = find(&report["forge"]["inference_id"]);
    assert_eq!(forge["status"], "complete");
    assert_eq!(forge["owner"], "alice");
    let workflow = find(&wf["run_id"]);
    assert_eq!(workflow["status"], "cancelled");
    assert_eq!(
        workflow["reserved_creative_units"].as_f64().unwrap_or(0.0),
        0.0
    );
}

#[tokio::test]
async fn the_typescript_sdk_runs_the_forge_and_workflow_lifecycles() {
    let s = setup().await;
    let home = ClientHome::new("ts-sdk");
    let mut command = clients::node_script(&script("lifecycle.cjs"), &home);
    command
        .env("MCP_URL", s.gateway.mcp_url())
        .env("LAYER_PAT", &s.pat)
        .env("POLL_CAP_SECONDS", "0.2");
    let report = json_stdout(&run(command, Duration::from_secs(180)).await, "");
    assert_eq!(
        report["forge_links"][0]["mimeType"], "image/png",
        "{report}"
    );
    assert!(
        report["forge_summary"]
            .as_str()
            .unwrap()
            .contains("Charged"),
        "{report}"
    );
    check_lifecycle(&s.sim, &report).await;
    s.sim.shutdown().await;
}

#[tokio::test]
async fn the_python_client_runs_the_lifecycles_over_2026_07_28_and_a_session() {
    let s = setup().await;
    for (mode, protocol) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let home = ClientHome::new("python");
        let mut command = clients::python_script(&script("lifecycle.py"), &home);
        command
            .env("MCP_URL", s.gateway.mcp_url())
            .env("LAYER_PAT", &s.pat)
            .env("MCP_MODE", mode)
            .env("POLL_CAP_SECONDS", "0.2");
        let output = run(command, Duration::from_secs(180)).await;
        let report = json_stdout(&output, &format!("{mode}: "));
        assert_eq!(report["protocol"], protocol, "{report}");
        check_lifecycle(&s.sim, &report).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("termination failed"), "{stderr}");
    }
    s.sim.shutdown().await;
}
