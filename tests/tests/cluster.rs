//! Scale-out: three gateway replicas sharing one Redis behind a plain round-robin
//! proxy (`e2e_tests::cluster`), driven by real clients at the proxy's URL: the TypeScript
//! SDK (`tests/clients/scripts/cluster_client.cjs`), mcp-remote, the Python SDK's OAuth
//! provider and its old-transport (HTTP+SSE) client. Replicas are killed, restarted one by one
//! and Redis is stopped while the clients work; the simulator's admin API says what Layer saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::clients::{self, ClientHome, PythonOAuthClient};
use e2e_tests::cluster::{Cluster, ClusterOptions, REPLICAS};
use e2e_tests::mcp;
use e2e_tests::oauth::{authorization_url, pkce, query, redeem_code};
use e2e_tests::paths::workspace_root;
use e2e_tests::sim::catalogue_ids;
use layer_sim::SimConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

const ACME: &str = "a0000000-0000-4000-8000-000000000001";
/// Generous: two shared cores, five engineers, three gateways and a Node process.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Settings for replicas that may die: short limiter leases, a call queue that outwaits them.
fn short_leases() -> Vec<(String, String)> {
    env(&[
        ("LAYER_MCP_CALL_LEASE_SECS", "3"),
        ("LAYER_MCP_RESERVATION_LEASE_SECS", "3"),
        ("LAYER_MCP_CALL_QUEUE_WAIT_SECS", "20"),
    ])
}

/// The TypeScript SDK client script running, its JSON events read as they come.
struct TsClient {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    stderr: std::path::PathBuf,
    _home: ClientHome,
}

impl TsClient {
    fn spawn(cluster: &Cluster, bearer: &str, mode: &str, extra: &[(&str, &str)]) -> TsClient {
        let home = ClientHome::new(&format!("cluster-{mode}"));
        let script = workspace_root().join("tests/clients/scripts/cluster_client.cjs");
        let stderr = home.path().join("stderr.log");
        let mut command = clients::node_script(&script, &home);
        command
            .env("MCP_URL", cluster.url())
            .env("BEARER", bearer)
            .env("MODE", mode)
            .env("WORKSPACE_ID", ACME)
            .env("MODEL_ID", catalogue_ids::FLUX_2_PRO.to_string())
            .envs(extra.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()));
        let mut child = command.spawn().expect("spawn node");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({"event": "text", "line": line}));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        TsClient {
            child,
            stdin,
            events,
            seen: Vec::new(),
            stderr,
            _home: home,
        }
    }

    fn describe(&self) -> String {
        let events: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        format!(
            "events:\n{}\nstderr:\n{}",
            events.join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Reads events until `count` of them match `matches` (or the script ends); panics after
    /// `timeout`.
    async fn wait_for(
        &mut self,
        count: usize,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while self.seen.iter().filter(|e| matches(e)).count() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(event)) => self.seen.push(event),
                Ok(None) => panic!("the client ended early\n{}", self.describe()),
                Err(_) => panic!("waited {timeout:?} for the client\n{}", self.describe()),
            }
        }
    }

    fn count(&self, matches: impl Fn(&Value) -> bool) -> usize {
        self.seen.iter().filter(|e| matches(e)).count()
    }

    /// Ends its stdin (a loop stops) and returns the final `done` event.
    async fn finish(mut self, timeout: Duration) -> (Value, TsClient) {
        drop(self.stdin.take());
        self.wait_for(1, timeout, |e| {
            e["event"] == "done" || e["event"] == "fatal"
        })
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let done = self
            .seen
            .iter()
            .find(|e| e["event"] == "done")
            .cloned()
            .unwrap_or_else(|| panic!("the client failed\n{}", self.describe()));
        (done, self)
    }
}

fn is_ok_call(event: &Value) -> bool {
    event["event"] == "call" && event["ok"] == true
}

/// The backends that got requests matching `matches`.
fn backends(cluster: &Cluster, matches: impl Fn(&e2e_tests::proxy::Routed) -> bool) -> Vec<usize> {
    let mut counts = vec![0; REPLICAS];
    for r in cluster.proxy.routed().iter().filter(|r| matches(r)) {
        counts[r.backend] += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pat_client_initializes_on_one_replica_and_calls_on_the_others() {
    let cluster = Cluster::start().await;
    cluster.proxy.reset();
    let client = TsClient::spawn(&cluster, &cluster.pat("alice"), "calls", &[("CALLS", "12")]);
    let (done, client) = client.finish(CLIENT_TIMEOUT).await;
    assert_eq!(done["tools"], 18, "{}", client.describe());
    assert_eq!(done["ok"], 12, "{}", client.describe());
    assert_eq!(done["failures"], 0, "{}", client.describe());
    assert_eq!(done["tool_errors"], 0, "{}", client.describe());
    let routed = cluster.proxy.routed();
    let posts: Vec<_> = routed
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/mcp"))
        .collect();
    // initialize, initialized, tools/list, 12 calls: every replica had its share, and the
    // session opened on one went on on the others.
    assert!(posts.len() >= 15, "{routed:?}");
    let initialize_on = posts[0].backend;
    let mut per_backend = [0usize; REPLICAS];
    for post in &posts {
        per_backend[post.backend] += 1;
    }
    assert!(per_backend.iter().all(|n| *n >= 4), "{per_backend:?}");
    assert!(
        posts.iter().any(|p| p.backend != initialize_on),
        "{routed:?}"
    );
    assert!(
        routed.iter().all(|r| r.status < 500),
        "no replica failed: {routed:?}\n{}",
        cluster.logs()
    );

    // mcp-remote (the stdio bridge most desktop clients use) with a header.
    cluster.proxy.reset();
    let home = ClientHome::new("cluster-mcp-remote");
    let (success, log) = clients::mcp_remote_with_header(
        &home,
        &cluster.url(),
        &cluster.pat("alice"),
        CLIENT_TIMEOUT,
    )
    .await;
    assert!(success, "{log}");
    assert!(log.contains("\"name\": \"execute_forge\""), "{log}");
    assert!(log.contains("Exiting OK"), "{log}");
    let spread = backends(&cluster, |r| r.path.starts_with("/mcp"));
    assert!(
        spread.iter().filter(|n| **n > 0).count() >= 2,
        "mcp-remote's requests spread: {spread:?}"
    );
}

/// How long a client may take to print its next line.
const LINE_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_login_through_the_proxy_calls_and_refreshes_on_every_replica() {
    // Access tokens live 5 s and the client calls every 6 s: it must refresh while it works.
    // (The Python SDK refreshes before a call when its token has expired; a token that
    // expires on the way gets a 401, after which it starts a new login, so the interval
    // stays clear of the lifetime.)
    let cluster = Cluster::start_with(ClusterOptions {
        env: env(&[("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL", "5")]),
        ..ClusterOptions::default()
    })
    .await;
    cluster.proxy.reset();
    let home = ClientHome::new("cluster-python-oauth");
    let mut client = PythonOAuthClient::start(
        &home,
        &cluster.url(),
        &[("EXTRA_CALLS", "4"), ("CALL_INTERVAL_SECONDS", "6")],
    );
    let Some(authorization) = client.next_line("AUTHORIZE", LINE_TIMEOUT).await else {
        panic!("no authorization URL: {}", client.rest_of_output().await);
    };
    let walk = cluster
        .browser()
        .authorize(&authorization, &cluster.origin(), &cluster.sim.origin())
        .await;
    let redirect = walk.redirect.expect("back to the client");
    assert_eq!(query(&redirect)["iss"], cluster.origin());
    client.send_redirect(&redirect).await;
    let Some([call, calls]) = client.next_lines(["CALL ", "CALLS"], LINE_TIMEOUT).await else {
        panic!(
            "the Python client did not finish: {}\n{}",
            client.rest_of_output().await,
            cluster.logs()
        );
    };
    let call: Value = serde_json::from_str(&call).unwrap();
    assert_eq!(call["is_error"], false, "{call}");
    let calls: Value = serde_json::from_str(&calls).unwrap();
    assert_eq!(calls["ok"], 4, "{calls}\n{}", cluster.logs());
    client.wait().await;

    // The login's steps and the refreshes were spread over the replicas.
    let routed = cluster.proxy.routed();
    let oauth = backends(&cluster, |r| {
        r.path.starts_with("/authorize")
            || r.path.starts_with("/token")
            || r.path.contains("callback")
    });
    assert!(oauth.iter().all(|n| *n > 0), "{oauth:?} {routed:?}");
    let tokens: Vec<_> = routed
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/token"))
        .collect();
    assert!(
        tokens.len() >= 3,
        "a code exchange and refreshes: {tokens:?}"
    );
    assert!(
        tokens.iter().all(|r| r.status == 200),
        "every token request worked: {tokens:?}\n{}",
        cluster.logs()
    );
    let token_backends: BTreeSet<usize> = tokens.iter().map(|r| r.backend).collect();
    assert!(token_backends.len() >= 2, "{tokens:?}");
    let calls = backends(&cluster, |r| {
        r.method == "POST" && r.path.starts_with("/mcp")
    });
    assert!(calls.iter().all(|n| *n > 0), "{calls:?}");
    assert!(
        routed
            .iter()
            .all(|r| r.status != 401 || r.path.starts_with("/mcp")),
        "{routed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_transport_stream_stays_on_one_replica_and_its_posts_land_on_the_others() {
    let cluster = Cluster::start().await;
    cluster.proxy.reset();
    let home = ClientHome::new("cluster-python-sse");
    let script = workspace_root().join("tests/clients/py/legacy_sse_forge.py");
    let mut command = clients::python_script(&script, &home);
    command
        .env("MCP_URL", cluster.url())
        .env("PAT", cluster.pat("alice"))
        .env("WORKSPACE_ID", ACME)
        .env("MODEL_ID", catalogue_ids::FLUX_2_PRO.to_string());
    let output = clients::run(command, CLIENT_TIMEOUT).await;
    let text = clients::text(&output);
    assert!(output.status.success(), "{text}\n{}", cluster.logs());
    let report: Value = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    assert_eq!(report["tools"].as_array().unwrap().len(), 18, "{report}");
    assert_eq!(report["status"], "complete", "{report}");
    assert_eq!(report["bad_input_code"], "INVALID_INPUTS", "{report}");
    assert_eq!(cluster.sim.counter("runs_created").await, 1);

    let routed = cluster.proxy.routed();
    let streams: Vec<_> = routed.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(streams.len(), 1, "one stream: {routed:?}");
    let stream_on = streams[0].backend;
    let posts: Vec<_> = routed.iter().filter(|r| r.method == "POST").collect();
    assert!(posts.len() >= 8, "{routed:?}");
    assert!(posts.iter().all(|r| r.status == 202), "{routed:?}");
    let elsewhere: BTreeSet<usize> = posts
        .iter()
        .map(|r| r.backend)
        .filter(|b| *b != stream_on)
        .collect();
    assert_eq!(
        elsewhere.len(),
        REPLICAS - 1,
        "POSTs reached the stream through both other replicas: {routed:?}"
    );
}

/// A public client's OAuth login through the proxy; returns (client_id, tokens).
async fn oauth_login(cluster: &Cluster) -> (String, Value) {
    let http = reqwest::Client::new();
    let redirect = "http://127.0.0.1:45999/callback";
    let reg: Value = http
        .post(cluster.proxy.url("/register"))
        .json(&json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": "cluster e2e"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().expect("registered").to_owned();
    let (verifier, challenge) = pkce();
    let url = authorization_url(
        &cluster.proxy.url("/authorize"),
        &client_id,
        redirect,
        "s",
        &challenge,
        &[("resource", &cluster.url()), ("scope", "layer")],
    );
    let walk = cluster
        .browser()
        .authorize(url.as_str(), &cluster.origin(), &cluster.sim.origin())
        .await;
    let q = query(walk.redirect.as_ref().unwrap());
    let tokens = redeem_code(
        &cluster.proxy.url("/token"),
        &client_id,
        &q["code"],
        redirect,
        &verifier,
    )
    .await;
    (client_id, tokens)
}

async fn token(cluster: &Cluster, form: &[(&str, &str)]) -> (u16, Value) {
    e2e_tests::oauth::post_form(&cluster.proxy.url("/token"), form).await
}

/// A session through the proxy with `bearer` reads a workspace.
async fn reads_a_workspace(cluster: &Cluster, bearer: &str) -> Result<(), String> {
    let client = mcp::connect(&cluster.url(), bearer)
        .await
        .map_err(|e| e.to_string())?;
    let result = mcp::call(&client, "get_workspace", json!({"workspace_id": ACME}))
        .await
        .map_err(|e| e.to_string())?;
    let _ = client.cancel().await;
    if result.is_error == Some(true) {
        return Err(format!("{result:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_replica_loses_no_run_and_no_login() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        sim: SimConfig {
            run_duration: Duration::from_secs(2),
            ..SimConfig::for_tests()
        },
        env: short_leases(),
        ..ClusterOptions::default()
    })
    .await;
    let (client_id, tokens) = oauth_login(&cluster).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    reads_a_workspace(&cluster, &access).await.unwrap();

    let mut client = TsClient::spawn(
        &cluster,
        &cluster.pat("alice"),
        "runs",
        &[("RUNS", "5"), ("RETRIES", "1")],
    );
    // Mid-work: two runs started, the second being polled.
    client
        .wait_for(2, CLIENT_TIMEOUT, |e| e["event"] == "run_started")
        .await;
    cluster.kill(1).await;
    let (done, client) = client.finish(CLIENT_TIMEOUT).await;
    assert_eq!(done["failures"], 0, "{}", client.describe());
    assert!(
        done["retries"].as_u64().unwrap() <= 1,
        "{}",
        client.describe()
    );
    let runs = done["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 5, "{}", client.describe());
    assert!(
        runs.iter().all(|r| r["status"] == "complete"),
        "{}",
        client.describe()
    );
    let started: BTreeSet<String> = runs
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(started.len(), 5, "{}", client.describe());
    // Layer saw exactly those runs: none lost, none started twice.
    let at_layer: BTreeSet<String> = cluster
        .sim
        .runs()
        .await
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(at_layer, started);
    assert_eq!(cluster.sim.counter("runs_created").await, 5);

    // The OAuth user is still logged in, with the replica still down: the access token
    // works, and so does a refresh (the grant lives in Redis, not in the dead process).
    reads_a_workspace(&cluster, &access)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, refreshed) = token(
        &cluster,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{refreshed}\n{}", cluster.logs());
    reads_a_workspace(&cluster, refreshed["access_token"].as_str().unwrap())
        .await
        .unwrap();
    // And the replica comes back into the rotation.
    cluster.start_replica(1).await;
    cluster.proxy.reset();
    for _ in 0..3 {
        reads_a_workspace(&cluster, &access).await.unwrap();
    }
    assert!(backends(&cluster, |_| true)[1] > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_tool_call() {
    let mut cluster = Cluster::start().await;
    // Reads take 1.5 s at Layer, so calls are in flight on a replica when it gets SIGTERM
    // (after the pre-stop pause): its drain must finish them.
    cluster
        .sim
        .add_faults(
            json!({"kind": "latency", "path_prefix": "/api/v1/workspaces", "latency_ms": 1500}),
        )
        .await;
    let mut client = TsClient::spawn(
        &cluster,
        &cluster.pat("alice"),
        "loop",
        &[("CONCURRENCY", "4")],
    );
    client.wait_for(10, CLIENT_TIMEOUT, is_ok_call).await;
    for i in 0..REPLICAS {
        let exited = cluster.restart(i).await;
        assert!(
            exited,
            "replica {i} drained and exited on SIGTERM\n{}",
            cluster.logs()
        );
        // Steady load on the new set before the next one goes.
        let before = client.count(is_ok_call);
        client
            .wait_for(before + 10, CLIENT_TIMEOUT, is_ok_call)
            .await;
    }
    cluster.proxy.reset();
    let before = client.count(is_ok_call);
    client
        .wait_for(before + 9, CLIENT_TIMEOUT, is_ok_call)
        .await;
    let (done, client) = client.finish(CLIENT_TIMEOUT).await;
    assert_eq!(
        done["failures"],
        0,
        "{}\n{}",
        client.describe(),
        cluster.logs()
    );
    assert_eq!(done["tool_errors"], 0, "{}", client.describe());
    assert!(done["ok"].as_u64().unwrap() >= 49, "{done}");
    // Every restarted replica is serving again.
    let spread = backends(&cluster, |r| r.path.starts_with("/mcp"));
    assert!(spread.iter().all(|n| *n > 0), "{spread:?}");
}

/// What a load task saw.
#[derive(Default)]
struct Seen {
    accepted: Vec<String>,
    /// Errors other than the cap's refusals, with when they happened.
    errors: Vec<(Instant, String)>,
    refusals: usize,
    hung: usize,
}

fn held_forge() -> Value {
    json!({"workspace_id": ACME, "model_id": catalogue_ids::FLUX_2_PRO.to_string(),
           "prompt": "a red fox SIM_HOLD", "batch_size": 1})
}

/// One JSON-RPC message POSTed to `/mcp` the way streamable-HTTP clients do; the answer
/// (from a JSON body or the SSE stream), or `HTTP <status>: <body>` / the transport error.
async fn rpc(
    http: &reqwest::Client,
    url: &str,
    pat: &str,
    session: Option<&str>,
    message: Value,
) -> Result<(Option<String>, Value), String> {
    let mut request = http
        .post(url)
        .bearer_auth(pat)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&message);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let is_sse = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .text()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {}: {body}", status.as_u16()));
    }
    if body.trim().is_empty() {
        return Ok((id, Value::Null));
    }
    let answer = if is_sse {
        e2e_tests::sse::parse(&body)
            .into_iter()
            .filter_map(|event| serde_json::from_str::<Value>(&event.data?).ok())
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
    } else {
        serde_json::from_str(&body).ok()
    }
    .ok_or_else(|| format!("no answer in: {body}"))?;
    Ok((id, answer))
}

/// Opens a 2025-11-25 session (initialize + initialized); its id.
async fn open_session(http: &reqwest::Client, url: &str, pat: &str) -> Result<String, String> {
    let (id, answer) = rpc(
        http,
        url,
        pat,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "cluster-load", "version": "1"}}}),
    )
    .await?;
    let id = id.ok_or_else(|| format!("no session id: {answer}"))?;
    rpc(
        http,
        url,
        pat,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    Ok(id)
}

/// One user's load: executes (held runs) and reads in a loop through the proxy, in a
/// session, opening a new one after a 404 (as the spec tells clients to).
async fn load(url: String, pat: String, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let http = reqwest::Client::new();
    let mut session: Option<String> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let started = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(30), async {
            if session.is_none() {
                session = Some(open_session(&http, &url, &pat).await?);
            }
            let (tool, args) = if i.is_multiple_of(2) {
                ("execute_forge", held_forge())
            } else {
                ("get_workspace", json!({"workspace_id": ACME}))
            };
            let message = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                                 "params": {"name": tool, "arguments": args}});
            rpc(&http, &url, &pat, session.as_deref(), message)
                .await
                .map(|(_, a)| a)
        })
        .await;
        {
            let mut seen = seen.lock().unwrap();
            match outcome {
                Err(_) => seen.hung += 1,
                Ok(Err(error)) => {
                    if error.starts_with("HTTP 404") {
                        session = None;
                    }
                    seen.errors.push((started, error));
                }
                Ok(Ok(answer)) => {
                    let result = &answer["result"];
                    let value = result["structuredContent"].clone();
                    if answer.get("error").is_some() {
                        seen.errors.push((started, answer.to_string()));
                    } else if result["isError"] == true {
                        if value["code"] == "RATE_LIMITED" {
                            seen.refusals += 1;
                        } else {
                            seen.errors.push((started, value.to_string()));
                        }
                    } else if let Some(id) = value["inference_id"].as_str() {
                        seen.accepted.push(id.to_owned());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_for_ten_seconds_under_load() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        // Layer would accept far more: only the gateways keep alice at 5.
        sim: SimConfig {
            max_concurrent_runs: 100,
            ..SimConfig::for_tests()
        },
        env: short_leases(),
        ..ClusterOptions::default()
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        tasks.push(tokio::spawn(load(
            cluster.url(),
            cluster.pat("alice"),
            stop.clone(),
            seen.clone(),
        )));
    }
    // Finishing held runs now and then lets new ones in, so the cap is tested all along.
    let finisher_stop = Arc::new(AtomicBool::new(false));
    let sim_origin = cluster.sim.origin();
    let finisher = {
        let stop = finisher_stop.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let state: Value = match http.get(format!("{sim_origin}/_sim/state")).send().await {
                    Ok(r) => r.json().await.unwrap_or(Value::Null),
                    Err(_) => continue,
                };
                // The oldest unfinished run only: the others keep their places.
                if let Some(run) = state["runs"].as_array().into_iter().flatten().find(|r| {
                    matches!(
                        r["status"].as_str(),
                        Some("in_progress" | "pending" | "running")
                    )
                }) {
                    let id = run["id"].as_str().unwrap_or_default();
                    let _ = http
                        .post(format!("{sim_origin}/_sim/runs/{id}/finish"))
                        .send()
                        .await;
                }
            }
        })
    };
    // Load before: runs admitted up to the cap.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().accepted.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "no runs admitted\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let down_at = Instant::now();
    cluster.stop_redis().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut readyz = Vec::new();
    for i in 0..REPLICAS {
        readyz.push(cluster.readyz(i).await.1);
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    let up_at = Instant::now();
    cluster.start_redis().await;

    // Every replica says it is whole again, without a restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..REPLICAS {
        loop {
            let (status, body) = cluster.readyz(i).await;
            if status == 200 && !body.contains("unreachable") && !body.contains("unavailable") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {i} not recovered: {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let accepted_at_recovery = seen.lock().unwrap().accepted.len();
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.lock().unwrap().accepted.len() < accepted_at_recovery + 3 {
        assert!(
            Instant::now() < deadline,
            "no runs admitted after Redis came back\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    finisher_stop.store(true, Ordering::Relaxed);
    finisher.await.unwrap();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.hung, 0, "nothing hangs");
    // While Redis was down the errors said what is missing.
    let outage: Vec<&String> = seen
        .errors
        .iter()
        .filter(|(at, _)| *at >= down_at && *at <= up_at)
        .map(|(_, text)| text)
        .collect();
    assert!(
        !outage.is_empty(),
        "calls needing Redis were refused while it was down"
    );
    for text in &outage {
        // It says what is missing: the session store or the limiter's store.
        let lower = text.to_lowercase();
        assert!(
            (lower.contains("unreachable") || lower.contains("unavailable"))
                && lower.contains("store"),
            "a clear error: {text}"
        );
        assert!(
            !text.contains(&cluster.pat("alice")),
            "no secret in an error"
        );
    }
    assert!(
        readyz.iter().all(|body| body.contains("unreachable")),
        "/readyz said so: {readyz:?}"
    );
    // Full service after: fresh sessions read and run.
    reads_a_workspace(&cluster, &cluster.pat("alice"))
        .await
        .unwrap();
    // The cap held throughout: never a 6th run at Layer.
    let max = cluster.sim.max_unfinished_runs("alice", ACME).await;
    assert_eq!(max, 5, "accepted {:?}", seen.accepted);
    let unique: BTreeSet<&String> = seen.accepted.iter().collect();
    assert_eq!(unique.len(), seen.accepted.len(), "no run reported twice");
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for run in cluster.sim.runs().await {
        *by_status
            .entry(run["status"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        cluster.sim.counter("runs_created").await as usize,
        seen.accepted.len(),
        "every run Layer started was reported to a client: {by_status:?}"
    );
}
