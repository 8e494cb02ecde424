//! The older HTTP+SSE transport (MCP 2024-11-05) on the gateway's `/mcp` URL, with
//! the real clients that speak it: Claude Code (`--transport sse`), mcp-remote
//! (`--transport sse-only`), the MCP Inspector CLI (`--transport sse`), Gemini CLI (`url`
//! entries), the Python SDK's SSE client (the forge lifecycle); bad input over raw HTTP; and
//! a thousand streams open at once on one gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use e2e_tests::clients::{self, ClientHome};
use e2e_tests::gateway::{GatewayOptions, GatewayProcess};
use e2e_tests::legacy_sse::{OldSession, open_many, rss_falls_to_kib, settled_rss_kib};
use e2e_tests::paths::{clients_dir, workspace_root};
use e2e_tests::sim::{TestSim, catalogue_ids};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use url::Url;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

struct Env {
    sim: TestSim,
    gateway: GatewayProcess,
}

impl Env {
    async fn start() -> Env {
        Self::start_with(Vec::new()).await
    }

    async fn start_with(env: Vec<(String, String)>) -> Env {
        let sim = TestSim::start().await;
        let gateway = GatewayProcess::start(GatewayOptions {
            layer_api_url: sim.api_url(),
            env,
            ..GatewayOptions::default()
        })
        .await;
        Env { sim, gateway }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&self.gateway.url(path)).unwrap()
    }

    /// How many POSTs reached the old transport's `/messages` (from the gateway's log).
    fn messages_posts(&self) -> usize {
        self.gateway.log_text().matches("/messages").count()
    }
}

/// Runs a client whose stdin must stay open while it works (mcp-remote-client shuts down
/// when its stdin closes), and returns its combined output.
async fn run_with_open_stdin(mut command: tokio::process::Command) -> (bool, String) {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn the client");
    let _stdin = child.stdin.take();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let finished = tokio::time::timeout(CLIENT_TIMEOUT, async {
        let (_, _, status) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err),
            child.wait()
        );
        status
    })
    .await
    .expect("the client finishes in time")
    .expect("wait for the client");
    (finished.success(), format!("{out}\n--- stderr\n{err}"))
}

#[tokio::test]
async fn claude_code_with_transport_sse_reports_connected() {
    let env = Env::start().await;
    let home = ClientHome::new("claude-sse");
    let url = env.gateway.mcp_url();
    for (name, pat) in [
        ("layer-sse", env.sim.pat("alice")),
        ("layer-sse-revoked", env.sim.revoked_pat("alice")),
    ] {
        let mut add = clients::npm_command("claude", &home);
        add.current_dir(home.path()).args([
            "mcp",
            "add",
            "--transport",
            "sse",
            name,
            &url,
            "--header",
            &format!("Authorization: Bearer {pat}"),
        ]);
        let output = clients::run(add, CLIENT_TIMEOUT).await;
        assert!(output.status.success(), "{}", clients::text(&output));
    }
    let mut list = clients::npm_command("claude", &home);
    list.current_dir(home.path()).args(["mcp", "list"]);
    let output = clients::run(list, CLIENT_TIMEOUT).await;
    let text = clients::text(&output);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"))
            .to_owned()
    };
    let good = line("layer-sse");
    assert!(
        good.contains("(SSE)") && good.contains("Connected"),
        "{text}"
    );
    // A token Layer refuses is not "Connected": the check above can fail.
    assert!(!line("layer-sse-revoked").contains("✔"), "{text}");
    assert!(env.messages_posts() > 0, "the old transport was used");
}

#[tokio::test]
async fn mcp_remote_sse_only_lists_and_calls_tools() {
    let env = Env::start().await;
    let pat = env.sim.pat("alice");
    let url = env.gateway.mcp_url();

    // mcp-remote-client: connects and lists the tools.
    let home = ClientHome::new("mcp-remote-client-sse");
    let mut command = clients::npm_command("mcp-remote-client", &home);
    command.current_dir(home.path()).args([
        &url,
        "--header",
        &format!("Authorization: Bearer {pat}"),
        "--transport",
        "sse-only",
    ]);
    let (ok, output) = run_with_open_stdin(command).await;
    assert!(ok, "{output}");
    assert!(
        output.contains("Connected to remote server using SSEClientTransport"),
        "{output}"
    );
    assert!(output.contains("\"name\": \"execute_forge\""), "{output}");

    // The mcp-remote proxy, as a desktop client runs it (stdio), lists and calls a tool.
    let home = ClientHome::new("mcp-remote-proxy-sse");
    let proxy = clients_dir()
        .join("node_modules")
        .join("mcp-remote")
        .join("dist")
        .join("proxy.js");
    let script = workspace_root().join("tests/clients/py/stdio_list_call.py");
    let mut command = clients::python_script(&script, &home);
    command
        .arg("get_workspace")
        .arg(json!({"workspace_id": env.sim.workspace_id("acme-studio")}).to_string())
        .arg("--")
        .arg(clients::node22())
        .arg(proxy)
        .arg(&url)
        .arg("--header")
        .arg(format!("Authorization: Bearer {pat}"))
        .arg("--transport")
        .arg("sse-only");
    let before = env.messages_posts();
    let output = clients::run(command, CLIENT_TIMEOUT).await;
    let text = clients::text(&output);
    assert!(output.status.success(), "{text}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    assert_eq!(report["tools"].as_array().unwrap().len(), 18, "{report}");
    assert_eq!(report["is_error"], false, "{report}");
    assert_eq!(report["result"]["slug"], "acme-studio", "{report}");
    assert!(
        env.messages_posts() > before,
        "the calls went over the old transport"
    );
}

#[tokio::test]
async fn inspector_cli_with_transport_sse_calls_a_tool() {
    let env = Env::start().await;
    let home = ClientHome::new("inspector-sse");
    let acme = env.sim.workspace_id("acme-studio");
    let mut command = clients::npm_command("mcp-inspector", &home);
    command.current_dir(home.path()).args([
        "--cli",
        &env.gateway.mcp_url(),
        "--transport",
        "sse",
        "--method",
        "tools/call",
        "--tool-name",
        "get_workspace",
        "--tool-arg",
        &format!("workspace_id={acme}"),
        "--header",
        &format!("Authorization: Bearer {}", env.sim.pat("alice")),
    ]);
    let output = clients::run(command, CLIENT_TIMEOUT).await;
    let text = clients::text(&output);
    assert!(output.status.success(), "{text}");
    let result: Value = serde_json::from_slice(&output.stdout).expect("the Inspector's JSON");
    assert_eq!(result["structuredContent"]["workspace_id"], acme, "{text}");
    assert_ne!(result["isError"], true, "{text}");
    assert!(env.messages_posts() > 0, "the old transport was used");
}

#[tokio::test]
async fn gemini_cli_url_entries_report_connected() {
    let env = Env::start().await;
    let home = ClientHome::new("gemini-sse");
    let work = home.path().join("work");
    let gemini = home.path().join(".gemini");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&gemini).unwrap();
    let url = env.gateway.mcp_url();
    let auth = json!({"Authorization": format!("Bearer {}", env.sim.pat("alice"))});
    // `url` is what Gemini CLI documents for SSE servers; this version tries streamable
    // HTTP first on a plain `url` and uses SSE only with `type: "sse"`. Both must connect.
    let settings = json!({"mcpServers": {
        "layer": {"url": url, "headers": auth},
        "layer-sse": {"url": url, "type": "sse", "headers": auth},
    }});
    std::fs::write(gemini.join("settings.json"), settings.to_string()).unwrap();
    std::fs::write(
        gemini.join("trustedFolders.json"),
        json!({work.display().to_string(): "TRUST_FOLDER"}).to_string(),
    )
    .unwrap();
    let mut command = clients::npm_command("gemini", &home);
    command.current_dir(&work).args(["mcp", "list"]);
    let output = clients::run(command, CLIENT_TIMEOUT).await;
    let text = clients::text(&output);
    for name in ["layer", "layer-sse"] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        assert!(line.contains("Connected"), "{name}: {text}");
    }
    assert!(
        env.messages_posts() > 0,
        "the `type: sse` entry used the old transport"
    );
}

#[tokio::test]
async fn a_python_sse_client_runs_the_forge_lifecycle() {
    let env = Env::start().await;
    let acme = env.sim.workspace_id("acme-studio");
    let before = env.sim.workspace_state(&acme).await;
    let runs_before = env.sim.counter("runs_created").await;
    let home = ClientHome::new("python-sse-forge");
    let script = workspace_root().join("tests/clients/py/legacy_sse_forge.py");
    let mut command = clients::python_script(&script, &home);
    command
        .env("MCP_URL", env.gateway.mcp_url())
        .env("PAT", env.sim.pat("alice"))
        .env("WORKSPACE_ID", &acme)
        .env("MODEL_ID", catalogue_ids::FLUX_2_PRO.to_string());
    let output = clients::run(command, CLIENT_TIMEOUT).await;
    let text = clients::text(&output);
    assert!(output.status.success(), "{text}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    assert_eq!(report["tools"].as_array().unwrap().len(), 18, "{report}");
    assert!(report["guide_chars"].as_u64().unwrap() > 100, "{report}");
    assert_eq!(report["model_listed"], true, "{report}");
    assert_eq!(report["started_status"], "in_progress", "{report}");
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["outputs"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["bad_input_error"], true, "{report}");
    assert_eq!(report["bad_input_code"], "INVALID_INPUTS", "{report}");

    // Exactly one run, charged what the run reports.
    assert_eq!(env.sim.counter("runs_created").await, runs_before + 1);
    let after = env.sim.workspace_state(&acme).await;
    let charged = report["charged"].as_f64().unwrap();
    let spent = before["available_creative_units"].as_f64().unwrap()
        - after["available_creative_units"].as_f64().unwrap();
    assert!(
        charged > 0.0 && (spent - charged).abs() < 1e-6,
        "{before} -> {after}, {report}"
    );
    assert!(env.messages_posts() > 0, "the old transport was used");
}

#[tokio::test]
async fn bad_input_over_the_old_transport() {
    let env = Env::start().await;
    let http = reqwest::Client::new();
    let alice = env.sim.pat("alice");
    let bob = env.sim.pat("bob");
    let messages = env.url("/messages");

    // No credentials: 401 with the challenge, on the GET and on a POST.
    let response = http
        .get(env.url("/mcp"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let response = http.post(messages.clone()).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 401);

    let mut session = OldSession::open(&http, &env.url("/mcp"), &alice)
        .await
        .unwrap();
    // A ping POSTed to `url` with `pat`.
    let ping = |url: url::Url, pat: &str| {
        http.post(url)
            .bearer_auth(pat)
            .body(r#"{"jsonrpc":"2.0","id":99,"method":"ping"}"#)
            .send()
    };

    // POST without sessionId: 400.
    let response = ping(messages.clone(), &alice).await.unwrap();
    assert_eq!(response.status(), 400);

    // Another user's sessionId: 404, exactly like an unknown one.
    let theirs = ping(session.connection.endpoint.clone(), &bob)
        .await
        .unwrap();
    let mut unknown_url = messages.clone();
    unknown_url.set_query(Some("sessionId=0123456789abcdef0123456789abcdef"));
    let unknown = ping(unknown_url, &bob).await.unwrap();
    assert_eq!(theirs.status(), 404);
    assert_eq!(unknown.status(), 404);
    assert_eq!(theirs.text().await.unwrap(), unknown.text().await.unwrap());

    // Malformed JSON: 400 with a JSON-RPC parse error.
    let response = session.connection.post_raw("{\"jsonrpc\": ").await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32700, "{body}");

    // A body over the limit (1 MiB by default): 413.
    let big = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "list_workspaces", "arguments": {"pad": "x".repeat(2 * 1024 * 1024)}}});
    let response = session.connection.post_json(&big).await.unwrap();
    assert_eq!(response.status(), 413);

    // None of that harmed the session, and none of it reached Layer as a call.
    let reply = session
        .request(
            "tools/call",
            json!({"name": "list_workspaces", "arguments": {}}),
        )
        .await
        .unwrap();
    assert_ne!(reply["result"]["isError"], true, "{reply}");
    assert_eq!(
        reply["result"]["structuredContent"]["total_count"], 2,
        "{reply}"
    );
}

#[tokio::test]
async fn a_thousand_old_style_streams_stay_open_and_closing_them_returns_their_memory() {
    const STREAMS: usize = 1000;
    // One user holds them all here: lift that user's cap (the total stays the default).
    let env = Env::start_with(vec![(
        "LAYER_MCP_LEGACY_SSE_STREAMS_PER_USER".into(),
        STREAMS.to_string(),
    )])
    .await;
    let mut gateway = env.gateway;
    let pid = gateway.process().pid().expect("the gateway runs");
    let url = Url::parse(&gateway.mcp_url()).unwrap();
    let pat = env.sim.pat("alice");

    // Warm up (first-use allocations: connection pools, the PAT cache, thread stacks).
    drop(open_many(&url, &pat, 20, 20).await.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = settled_rss_kib(pid, Duration::from_secs(5)).await.unwrap();

    let mut sessions = open_many(&url, &pat, STREAMS, 50).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Every stream is still open and answering, the first as well as the last.
    for session in sessions.iter_mut().step_by(50) {
        let reply = session.request("ping", json!({})).await.unwrap();
        assert_eq!(reply["result"], json!({}), "{reply}");
    }
    let last = sessions.last_mut().unwrap();
    assert_eq!(
        last.request("ping", json!({})).await.unwrap()["result"],
        json!({})
    );
    let open = settled_rss_kib(pid, Duration::from_secs(5)).await.unwrap();
    let grew = open.saturating_sub(baseline);
    // A thousand streams cost megabytes (about 50 KiB each): too little growth would make the
    // check below meaningless.
    assert!(
        grew > 10 * 1024,
        "a thousand streams cost something: {baseline} -> {open} KiB"
    );

    drop(sessions);
    // Every closed stream ends its session (rmcp logs each service's end).
    let started = gateway
        .log_text()
        .matches("Service initialized as server")
        .count();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while gateway.log_text().matches("serve finished").count() < started {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions still running after their streams closed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...and the gateway gives the memory back: within a quarter of what the streams took
    // (jemalloc purges freed pages over its 10 s decay, on its own threads; glibc's malloc
    // would stay at the peak). A minute leaves room for a loaded machine.
    let (closed, returned_in) = rss_falls_to_kib(pid, baseline + grew / 4, Duration::from_secs(60))
        .await
        .unwrap();
    let per_stream = grew as f64 / STREAMS as f64;
    println!(
        "old-style streams: baseline {baseline} KiB; {STREAMS} open {open} KiB ({per_stream:.1} KiB per stream); \
         all closed: {closed} KiB (limit {} KiB) after {returned_in:?}",
        baseline + grew / 4
    );
    assert!(
        returned_in.is_some(),
        "closing the streams returns their memory: baseline {baseline}, open {open}, \
         lowest after closing {closed} KiB (limit {} KiB)",
        baseline + grew / 4
    );

    // A second thousand fits in the same memory again: it does not keep growing.
    let sessions = open_many(&url, &pat, STREAMS, 50).await.unwrap();
    let reopened = settled_rss_kib(pid, Duration::from_secs(5)).await.unwrap();
    drop(sessions);
    assert!(
        reopened < open + grew / 2,
        "a second thousand streams costs no more than the first: baseline {baseline}, \
         open {open}, closed {closed}, reopened {reopened} KiB"
    );
    let mut again = OldSession::open(&reqwest::Client::new(), &url, &pat)
        .await
        .unwrap();
    assert_eq!(
        again.request("ping", json!({})).await.unwrap()["result"],
        json!({})
    );
}
