//! Test environment: a simulator and a gateway in-process, both on real loopback HTTP, and
//! a small raw MCP client (reqwest) that shows every header and status.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use gateway::{Config, RunningGateway, Services};
use layer_sim::{RunningSim, SimConfig};
use legacy_sse::client::Connection;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use test_support::sim::SimAdmin;
use test_support::sse::{self, SseReader};

pub const ACME: &str = "a0000000-0000-4000-8000-000000000001";
pub const ALICE_PERSONAL: &str = "a0000000-0000-4000-8000-000000000002";
pub const BOB_SANDBOX: &str = "a0000000-0000-4000-8000-000000000003";
pub const FLUX_2_PRO: &str = "b0000000-0000-4000-8000-000000000001";
pub const CHARACTER_TURNAROUND: &str = "c0000000-0000-4000-8000-000000000002";
pub const MISSING: &str = "d0000000-0000-4000-8000-00000000dead";

pub struct Env {
    pub sim: RunningSim,
    pub gateway: RunningGateway,
    pub http: reqwest::Client,
    pub alice: String,
    pub bob: String,
    pub alice_revoked: String,
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(|_| {}).await
    }

    /// Starts both, letting the test adjust the gateway's configuration first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Env {
        Env::start_with_sim(SimConfig::for_tests(), adjust).await
    }

    /// Starts a simulator configured by the test, and the gateway in front of it.
    pub async fn start_with_sim(sim: SimConfig, adjust: impl FnOnce(&mut Config)) -> Env {
        let sim = layer_sim::start(SimConfig {
            enable_admin: true,
            ..sim
        })
        .await
        .expect("simulator starts");
        let mut config =
            Config::for_local(SocketAddr::from(([127, 0, 0, 1], 0)), sim.api_url().clone());
        config.upload_allow_hosts = vec![sim.local_addr().to_string()];
        config.upstream_request_timeout = Duration::from_secs(5);
        adjust(&mut config);
        let services = Services::from_config(&config).expect("services");
        let gateway = gateway::start(config, services)
            .await
            .expect("gateway starts");
        let alice = active_pat(&sim, "alice");
        let bob = active_pat(&sim, "bob");
        let alice_revoked = sim
            .fixtures()
            .revoked_pat("alice")
            .unwrap()
            .expose_secret()
            .to_owned();
        Env {
            sim,
            gateway,
            http: reqwest::Client::new(),
            alice,
            bob,
            alice_revoked,
        }
    }

    /// Another gateway (a replica) in front of the same simulator, configured by `adjust`.
    pub async fn replica(&self, adjust: impl FnOnce(&mut Config)) -> RunningGateway {
        let mut config = Config::for_local(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            self.sim.api_url().clone(),
        );
        adjust(&mut config);
        let services = Services::from_config(&config).unwrap();
        gateway::start(config, services).await.unwrap()
    }

    pub fn mcp_url(&self) -> String {
        self.gateway.mcp_url()
    }

    pub fn sim_url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.sim.base_url().as_str().trim_end_matches('/'),
            path
        )
    }

    /// The simulator's admin API.
    pub fn admin(&self) -> SimAdmin {
        SimAdmin::new(self.sim.base_url().as_str())
    }

    /// The bytes at `url` (e.g. a run's output).
    pub async fn download(&self, url: &str) -> bytes::Bytes {
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    }

    pub async fn sim_state(&self) -> Value {
        self.admin().state().await
    }

    /// Requests the simulator's API (not its admin endpoints) has served.
    pub async fn api_requests(&self) -> u64 {
        self.admin().api_requests().await
    }

    pub async fn runs_created(&self) -> u64 {
        self.sim_state().await["counters"]["runs_created"]
            .as_u64()
            .unwrap()
    }

    pub async fn available(&self, workspace: &str) -> f64 {
        self.admin().workspace(workspace).await["available_creative_units"]
            .as_f64()
            .unwrap()
    }

    pub async fn add_fault(&self, fault: Value) {
        self.admin().add_faults(fault).await;
    }

    pub async fn clear_faults(&self) {
        self.admin().clear_faults().await;
    }

    /// A raw client for `pat`.
    pub fn client(&self, pat: &str) -> Raw {
        Raw {
            http: self.http.clone(),
            url: self.mcp_url(),
            pat: Some(pat.to_owned()),
            session: None,
            version: "2025-11-25".to_owned(),
            next_id: 1,
        }
    }

    /// An initialized session of `pat`.
    pub async fn session(&self, pat: &str) -> Raw {
        let mut raw = self.client(pat);
        raw.initialize().await;
        raw
    }

    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.sim.shutdown().await;
    }
}

/// An HTTP answer with its JSON-RPC message (from JSON or from the SSE stream).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub content_type: String,
    pub message: Option<Value>,
    pub text: String,
}

impl Answer {
    pub fn result(&self) -> &Value {
        self.member("result", "a result")
    }

    pub fn error(&self) -> &Value {
        self.member("error", "an error")
    }

    /// The message's `key` member; panics naming `what` was expected if there is none.
    fn member(&self, key: &str, what: &str) -> &Value {
        let m = self
            .message
            .as_ref()
            .unwrap_or_else(|| panic!("no message: {self:?}"));
        m.get(key).unwrap_or_else(|| panic!("not {what}: {m}"))
    }

    /// The structured content of a tool result.
    pub fn structured(&self) -> &Value {
        &self.result()["structuredContent"]
    }

    pub fn is_tool_error(&self) -> bool {
        self.result()["isError"] == json!(true)
    }
}

/// A raw MCP client over reqwest.
pub struct Raw {
    pub http: reqwest::Client,
    pub url: String,
    pub pat: Option<String>,
    pub session: Option<String>,
    pub version: String,
    pub next_id: u64,
}

impl Raw {
    /// [`Raw::request`] with this `Accept` (and body, if any), sent.
    pub async fn send_accepting(
        &self,
        method: reqwest::Method,
        accept: &str,
        body: Option<&'static str>,
    ) -> reqwest::Response {
        let mut r = self.request(method).header("accept", accept);
        if let Some(body) = body {
            r = r.body(body);
        }
        r.send().await.unwrap()
    }

    /// A response's `Content-Type`, or `""`.
    pub fn content_type(response: &reqwest::Response) -> &str {
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, &self.url);
        if let Some(pat) = &self.pat {
            r = r.bearer_auth(pat);
        }
        if let Some(s) = &self.session {
            r = r.header("mcp-session-id", s);
        }
        r
    }

    /// POSTs a JSON-RPC message with the usual headers.
    pub async fn post(&mut self, body: Value) -> Answer {
        let r = self
            .request(reqwest::Method::POST)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .header("mcp-protocol-version", self.version.clone())
            .json(&body);
        read(r.send().await.unwrap()).await
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends an initialize request, whatever the answer.
    pub async fn send_initialize(&mut self) -> Answer {
        let id = self.id();
        let version = self.version.clone();
        self.post(
            json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "gateway-tests", "version": "1"}}}),
        )
        .await
    }

    pub async fn initialize(&mut self) -> Answer {
        let answer = self.send_initialize().await;
        assert_eq!(answer.status, StatusCode::OK, "initialize: {answer:?}");
        self.session = answer
            .headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        let initialized = self
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(initialized.status, StatusCode::ACCEPTED);
        answer
    }

    pub async fn list_tools(&mut self) -> Answer {
        let id = self.id();
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": {}}))
            .await
    }

    pub async fn call(&mut self, name: &str, arguments: Value) -> Answer {
        let id = self.id();
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": arguments}}))
            .await
    }

    /// Calls a tool and expects success; returns the structured content, checked against
    /// the tool's published output schema (as the TypeScript SDK client checks it).
    pub async fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let answer = self.call(name, arguments).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {answer:?}");
        assert!(
            !answer.is_tool_error(),
            "{name} failed: {}",
            answer.result()
        );
        assert_conforms(name, answer.structured());
        answer.structured().clone()
    }

    /// Calls a tool and expects a tool error; returns the structured content (which must
    /// also satisfy the output schema: clients validate error results too).
    pub async fn fails(&mut self, name: &str, arguments: Value) -> Value {
        let answer = self.call(name, arguments).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {answer:?}");
        assert!(
            answer.is_tool_error(),
            "{name} should fail: {}",
            answer.result()
        );
        assert_conforms(name, answer.structured());
        answer.structured().clone()
    }
}

/// Reads a response: JSON, or SSE until the first JSON-RPC response (the stream may stay
/// open after it).
pub async fn read(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if content_type.starts_with("text/event-stream") {
        let mut events = SseReader::new(response);
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
            let data = event.data.clone().unwrap_or_default();
            if let Some(message) = sse::json_rpc_response(&event) {
                return Answer {
                    status,
                    headers,
                    content_type,
                    message: Some(message),
                    text: data,
                };
            }
            seen.push(data);
        }
        return Answer {
            status,
            headers,
            content_type,
            message: None,
            text: seen.join("\n"),
        };
    }
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str(&text).ok();
    Answer {
        status,
        headers,
        content_type,
        message,
        text,
    }
}

/// Polls `get_forge_run` until terminal.
pub async fn wait_forge(client: &mut Raw, workspace: &str, inference: &str) -> Answer {
    for _ in 0..100 {
        let answer = client
            .call(
                "get_forge_run",
                json!({"workspace_id": workspace, "inference_id": inference}),
            )
            .await;
        let status = answer.structured()["status"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_conforms("get_forge_run", answer.structured());
        if ["complete", "failed", "cancelled", "deleted"].contains(&status.as_str()) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {inference} did not finish");
}

/// A fixture user's working PAT.
pub fn active_pat(sim: &RunningSim, login: &str) -> String {
    sim.fixtures()
        .active_pat(login)
        .unwrap()
        .expose_secret()
        .to_owned()
}

/// The gateway binary's `serve` as its own process.
pub struct Served {
    pub child: tokio::process::Child,
    pub port: u16,
    /// Ends with what it logged, once it has exited.
    pub logs: tokio::task::JoinHandle<String>,
}

/// Starts `serve` on a free port in front of `sim`, with `args` and `envs` added. Its
/// stderr is drained while it runs (a full pipe would stall it).
pub fn serve(sim: &RunningSim, args: &[&str], envs: &[(&str, &str)]) -> Served {
    use std::process::Stdio;
    use tokio::io::AsyncReadExt;

    let port = test_support::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_layer-mcp-gateway"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--layer-api-url",
            sim.api_url().as_str(),
        ])
        .args(args)
        .envs(envs.iter().copied())
        // Whether colours reach a log that is not a terminal is for the gateway to decide.
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        // Byte for byte (a test looks for control characters in them).
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    });
    Served { child, port, logs }
}

/// Waits (ten seconds at most) for a `serve` process listening on `port` to answer
/// /healthz, then gives a client of its /mcp with alice's PAT speaking `version`.
pub async fn served_client(port: u16, sim: &RunningSim, version: &str) -> Raw {
    let http = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..100 {
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "serve starts");
    Raw {
        http,
        url: format!("http://127.0.0.1:{port}/mcp"),
        pat: Some(active_pat(sim, "alice")),
        session: None,
        version: version.into(),
        next_id: 1,
    }
}

/// Sends `client` on to another gateway (a replica at `url`), which must take its session
/// as it is, restored from Redis without a new initialize: the tools and alice's workspaces
/// answer there. Returns the tools/list answer.
pub async fn move_session(client: &mut Raw, url: String) -> Answer {
    let session = client.session.clone().expect("a session to move");
    client.url = url;
    let tools = client.list_tools().await;
    assert_eq!(tools.status, StatusCode::OK, "{tools:?}");
    let workspaces = client.ok("list_workspaces", json!({})).await;
    assert!(workspaces.to_string().contains(ACME), "{workspaces}");
    assert_eq!(client.session.as_deref(), Some(session.as_str()));
    tools
}

/// A list_workspaces result: it conforms to the tool's output schema and lists acme.
pub fn assert_lists_acme(workspaces: &Value) {
    assert_conforms("list_workspaces", workspaces);
    assert!(
        workspaces["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["workspace_id"] == ACME),
        "{workspaces}"
    );
}

/// Checks structured content against the tool's output schema, with formats (uuid,
/// date-time) validated as ajv-formats does.
pub fn assert_conforms(tool: &str, value: &Value) {
    let catalogue = gateway::Catalogue::new().unwrap();
    let Some(spec) = catalogue.tool(tool) else {
        return;
    };
    let schema = Value::Object(
        spec.output_schema
            .as_ref()
            .expect("an output schema")
            .as_ref()
            .clone(),
    );
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{tool}: structured content does not match the output schema: {errors:?}\n{value}"
    );
}

/// The next JSON-RPC message on an old-transport (HTTP+SSE) stream, 20 s at most.
pub async fn next_message(connection: &mut Connection) -> Value {
    let (event, data) =
        tokio::time::timeout(Duration::from_secs(20), connection.events.next_event())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("readable");
    assert_eq!(event, "message");
    serde_json::from_str(&data).unwrap()
}

/// Reads an old-transport stream up to the answer to request `id`.
pub async fn reply_to(connection: &mut Connection, id: i64) -> Value {
    loop {
        let message = next_message(connection).await;
        if message["id"] == json!(id) {
            return message;
        }
    }
}

/// The `_meta` a 2026-07-28 (stateless) request carries in place of a handshake.
pub fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// A 2026-07-28 (stateless) request with every header that revision requires.
pub fn stateless(
    env: &Env,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> reqwest::RequestBuilder {
    let mut params = params;
    params["_meta"] = stateless_meta();
    let mut r = env
        .http
        .post(env.mcp_url())
        .bearer_auth(&env.alice)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}));
    if let Some(name) = name {
        r = r.header("mcp-name", name);
    }
    r
}
