//! OAuth end to end: real MCP clients log in through the gateway's OAuth authorization
//! server, with the simulator playing Layer's identity provider and the test playing the
//! person at the browser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use e2e_tests::clients::{self, ClientHome, PythonOAuthClient};
use e2e_tests::mcp;
use e2e_tests::oauth::{self, OAuthStack, pkce, query, redeem_code};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use url::Url;

async fn register(stack: &OAuthStack, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(stack.gateway.url("/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

/// POST /token with a form; returns (status, body).
async fn token(stack: &OAuthStack, form: &[(&str, &str)]) -> (u16, Value) {
    e2e_tests::oauth::post_form(&stack.gateway.url("/token"), form).await
}

fn authorization_url(
    stack: &OAuthStack,
    client_id: &str,
    redirect: &str,
    challenge: &str,
    resource: &str,
) -> String {
    oauth::authorization_url(
        &stack.gateway.url("/authorize"),
        client_id,
        redirect,
        "test-state",
        challenge,
        &[("resource", resource), ("scope", "layer")],
    )
    .to_string()
}

/// A public client that went through the whole flow: its tokens.
async fn login_public(stack: &OAuthStack) -> (String, Value) {
    let redirect = "http://127.0.0.1:45999/callback";
    let reg = register(stack, json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": "e2e"})).await;
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce();
    let url = authorization_url(
        stack,
        &client_id,
        redirect,
        &challenge,
        &stack.gateway.mcp_url(),
    );
    let walk = stack.authorize(&url).await;
    let q = query(walk.redirect.as_ref().unwrap());
    let tokens = stack
        .redeem(&client_id, &q["code"], redirect, &verifier)
        .await;
    (client_id, tokens)
}

/// An MCP initialize POSTed to `url`, with `bearer` if given.
async fn initialize(url: String, bearer: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The JSON body of the answer to `request`.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

async fn list_workspaces_with(stack: &OAuthStack, access: &str) -> Value {
    let client = mcp::connect(&stack.gateway.mcp_url(), access)
        .await
        .expect("connect with the OAuth token");
    let result = mcp::call(&client, "list_workspaces", json!({}))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let _ = client.cancel().await;
    mcp::structured(&result)
}

#[tokio::test]
async fn mcp_remote_completes_the_oauth_flow() {
    let stack = OAuthStack::start(|_| {}, &[]).await;
    let home = ClientHome::new("mcp-remote-oauth");
    let mut command = clients::npm_command("mcp-remote-client", &home);
    command
        .arg(stack.gateway.mcp_url())
        // Never launch a real browser: the test is the browser.
        .env("BROWSER", "true")
        .env_remove("DISPLAY")
        // It shuts down when its stdin ends: keep it open until the test is done.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn mcp-remote-client");
    let _stdin = child.stdin.take();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    for stream in [
        Box::new(stderr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stdout),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
    }
    drop(tx);
    let mut seen = Vec::new();
    let authorization = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            seen.push(line.clone());
            if let Some(start) = line.find("http")
                && line[start..].contains("/authorize?")
            {
                return Some(line[start..].trim().to_owned());
            }
        }
        None
    })
    .await
    .unwrap_or(None)
    .unwrap_or_else(|| {
        panic!(
            "mcp-remote printed no authorization URL:\n{}",
            seen.join("\n")
        )
    });
    let walk = stack.authorize(&authorization).await;
    let redirect = walk.redirect.expect("redirect to mcp-remote");
    assert_eq!(redirect.host_str(), Some("localhost"), "{redirect}");
    assert_eq!(query(&redirect)["iss"], stack.gateway.public_url);
    // The browser lands on mcp-remote's callback server.
    let delivered = reqwest::get(redirect.as_str())
        .await
        .expect("mcp-remote callback");
    assert!(delivered.status().is_success(), "{}", delivered.status());
    // It lists the tools (and resources) and then waits: read until the list is there.
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            let done = line.contains("Requesting resource list");
            seen.push(line);
            if done {
                break;
            }
        }
    })
    .await;
    let _ = child.kill().await;
    let output = seen.join("\n");
    assert!(
        output.contains("list_workspaces"),
        "tools listed after the OAuth login:\n{output}"
    );
    assert!(!output.contains(&stack.password), "no secret in the output");
}

/// How long a client may take to print its next line.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_python_sdk_oauth_provider_logs_in_and_calls_a_tool() {
    let stack = OAuthStack::start(|_| {}, &[]).await;
    let home = ClientHome::new("python-oauth");
    let mut client = PythonOAuthClient::start(&home, &stack.gateway.mcp_url(), &[]);
    let Some(authorization) = client.next_line("AUTHORIZE", LINE_TIMEOUT).await else {
        panic!("no authorization URL: {}", client.rest_of_output().await);
    };
    let walk = stack.authorize(&authorization).await;
    let redirect = walk.redirect.unwrap();
    client.send_redirect(&redirect).await;
    let Some([tools, call]) = client.next_lines(["TOOLS", "CALL"], LINE_TIMEOUT).await else {
        panic!(
            "the Python client did not finish: {}",
            client.rest_of_output().await
        );
    };
    let tools: Vec<String> = serde_json::from_str(&tools).unwrap();
    assert!(tools.contains(&"list_workspaces".to_owned()), "{tools:?}");
    let call: Value = serde_json::from_str(&call).unwrap();
    assert_eq!(call["is_error"], false, "{call}");
    client.wait().await;
}

#[tokio::test]
async fn a_claude_ai_like_sequence_gets_tokens_that_work() {
    let stack = OAuthStack::start(|_| {}, &[]).await;
    let http = reqwest::Client::new();
    // An unauthenticated probe: 401 pointing at the protected resource metadata.
    let probe = initialize(stack.gateway.mcp_url(), None).await;
    assert_eq!(probe.status(), 401);
    let challenge = probe.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let metadata_url = stack
        .gateway
        .url("/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    // Claude strips the path and reads the root documents.
    let prm = json_of(http.get(stack.gateway.url("/.well-known/oauth-protected-resource"))).await;
    assert_eq!(prm["resource"], stack.gateway.mcp_url());
    let asm = json_of(http.get(stack.gateway.url("/.well-known/oauth-authorization-server"))).await;
    assert_eq!(asm["issuer"], stack.gateway.public_url);
    // DCR asking for client_secret_post with Claude's callback.
    let redirect = "https://claude.ai/api/mcp/auth_callback";
    let reg = register(
        &stack,
        json!({
            "client_name": "Claude",
            "redirect_uris": [redirect],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "layer",
        }),
    )
    .await;
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce();
    // /authorize at the origin, resource with a trailing slash.
    let resource = format!("{}/", stack.gateway.mcp_url());
    let url = authorization_url(&stack, &client_id, redirect, &challenge, &resource);
    let walk = stack.authorize(&url).await;
    assert!(walk.consent_page.contains("Claude"));
    assert!(walk.consent_page.contains("claude.ai"));
    let back = walk.redirect.unwrap();
    assert!(back.as_str().starts_with(redirect), "{back}");
    let q = query(&back);
    assert_eq!(q["state"], "test-state");
    let (status, tokens) = token(
        &stack,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("client_secret", &secret),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
            ("resource", &resource),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let workspaces = list_workspaces_with(&stack, tokens["access_token"].as_str().unwrap()).await;
    assert!(workspaces.to_string().contains("workspace"), "{workspaces}");
    // Claude refreshes from two places at nearly the same time: both work.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &client_id),
        ("client_secret", &secret),
        ("refresh_token", refresh),
    ];
    let ((s1, a), (s2, b)) = tokio::join!(token(&stack, &form), token(&stack, &form));
    assert_eq!((s1, s2), (200, 200), "{a} {b}");
    list_workspaces_with(&stack, a["access_token"].as_str().unwrap()).await;
    list_workspaces_with(&stack, b["access_token"].as_str().unwrap()).await;
}

#[tokio::test]
async fn headless_chromium_walks_the_consent_page_and_the_login() {
    let stack = OAuthStack::start(|_| {}, &[]).await;
    let redirect = "http://localhost:46123/oauth/callback";
    let reg = register(&stack, json!({"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": "Chromium test app"})).await;
    let client_id = reg["client_id"].as_str().unwrap().to_owned();
    let (verifier, challenge) = pkce();
    let url = authorization_url(
        &stack,
        &client_id,
        redirect,
        &challenge,
        &stack.gateway.mcp_url(),
    );
    let home = ClientHome::new("chromium");
    let script =
        e2e_tests::paths::workspace_root().join("tests/clients/scripts/chromium_consent.cjs");
    let artifacts = e2e_tests::paths::artifacts_dir();
    let mut command = clients::node_script(&script, &home);
    command
        .arg(&url)
        .arg(&stack.login)
        .arg(&stack.password)
        .arg(&artifacts)
        .arg(redirect);
    let output = clients::run(command, Duration::from_secs(120)).await;
    let text = clients::text(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("CONSENT Chromium test app wants to use your Layer account"),
        "{text}"
    );
    let landed = text
        .lines()
        .find_map(|l| l.strip_prefix("REDIRECT "))
        .expect("final redirect");
    let q = query(&Url::parse(landed).unwrap());
    assert!(
        q.contains_key("code"),
        "landed on {landed}\n{}",
        stack.gateway.log_text()
    );
    for shot in [
        "oauth-consent.png",
        "oauth-layer-login.png",
        "oauth-connected.png",
    ] {
        let meta =
            std::fs::metadata(artifacts.join(shot)).unwrap_or_else(|_| panic!("{shot} kept"));
        assert!(meta.len() > 1000, "{shot} is a real picture");
    }
    stack
        .redeem(&client_id, &q["code"], redirect, &verifier)
        .await;
}

#[tokio::test]
async fn refresh_rotation_grace_and_a_restart_lose_nothing() {
    let mut stack = OAuthStack::start(|_| {}, &["--oauth-refresh-grace", "2"]).await;
    let (client_id, tokens) = login_public(&stack).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    list_workspaces_with(&stack, &access).await;
    // A restart in the middle: the access token, the refresh token and the login survive.
    stack.gateway.restart().await;
    list_workspaces_with(&stack, &access).await;
    let r0 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let form = |r: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", client_id.clone()),
            ("refresh_token", r.to_owned()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let stack = &stack;
        async move {
            let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(stack, &refs).await
        }
    };
    let ((s1, a), (s2, b)) = tokio::join!(send(form(&r0)), send(form(&r0)));
    assert_eq!(
        (s1, s2),
        (200, 200),
        "both refreshes within the grace window: {a} {b}"
    );
    assert_ne!(a["refresh_token"], json!(r0), "rotated");
    list_workspaces_with(&stack, a["access_token"].as_str().unwrap()).await;
    let (s, c) = send(form(a["refresh_token"].as_str().unwrap())).await;
    assert_eq!(s, 200, "{c}");
    let newest = c["access_token"].as_str().unwrap().to_owned();
    // After the grace window the first token is a replay: the grant is revoked.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, body) = send(form(&r0)).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let resp = initialize(stack.gateway.mcp_url(), Some(&newest)).await;
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata="),
        "{challenge}"
    );
    // No token ever reaches the log.
    let log = stack.gateway.log_text();
    let a_refresh = a["refresh_token"].as_str().unwrap();
    for secret in [access.as_str(), r0.as_str(), newest.as_str(), a_refresh] {
        assert!(!log.contains(secret), "a token in the gateway log");
    }
}

#[tokio::test]
async fn layer_is_refreshed_once_under_twenty_parallel_calls() {
    let stack = OAuthStack::start(|sim| sim.access_token_ttl = Duration::from_secs(8), &[]).await;
    let (_, tokens) = login_public(&stack).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let client = mcp::connect(&stack.gateway.mcp_url(), &access)
        .await
        .unwrap();
    let refreshes = |state: Value| {
        state["counters"]["token_refreshes"][e2e_tests::oauth::USER]
            .as_u64()
            .unwrap_or(0)
    };
    let before = refreshes(stack.sim_state().await);
    // Past half of Layer's token lifetime: the next calls need a fresh one.
    tokio::time::sleep(Duration::from_millis(4300)).await;
    let calls = (0..20).map(|_| mcp::call(&client, "list_workspaces", json!({})));
    let results = futures::future::join_all(calls).await;
    for r in &results {
        let r = r.as_ref().expect("call");
        assert_ne!(r.is_error, Some(true), "{r:?}");
    }
    let after = refreshes(stack.sim_state().await);
    assert_eq!(
        after - before,
        1,
        "one refresh at Layer for 20 concurrent calls"
    );
    let _ = client.cancel().await;
}

#[tokio::test]
async fn refusals_over_http_and_pats_side_by_side() {
    let stack = OAuthStack::start(|_| {}, &[]).await;
    let http = reqwest::Client::new();
    let metadata = format!(
        "resource_metadata=\"{}\"",
        stack
            .gateway
            .url("/.well-known/oauth-protected-resource/mcp")
    );
    let (client_id, tokens) = login_public(&stack).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // Revoke the grant: its access token stops at once.
    let resp = http
        .post(stack.gateway.url("/revoke"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "token={}&client_id={client_id}",
            tokens["refresh_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let forged = format!("{}x", &access[..access.len() - 1]);
    for (label, bearer) in [
        ("none", None),
        ("garbage", Some("not-a-token")),
        ("revoked", Some(access.as_str())),
        ("tampered", Some(forged.as_str())),
    ] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::POST,
            reqwest::Method::DELETE,
        ] {
            let mut request = http
                .request(method.clone(), stack.gateway.mcp_url())
                .header("accept", "application/json, text/event-stream");
            if method == reqwest::Method::POST {
                request = request.json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
            }
            if let Some(b) = bearer {
                request = request.bearer_auth(b);
            }
            let resp = request.send().await.unwrap();
            assert_eq!(resp.status(), 401, "{label} {method}");
            let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.contains(&metadata),
                "{label} {method}: {challenge}"
            );
            assert!(challenge.contains("scope=\"layer\""), "{challenge}");
            assert_eq!(
                challenge.contains("error=\"invalid_token\""),
                label != "none",
                "{label}: {challenge}"
            );
        }
    }
    // A Client ID Metadata Document on a private address: an error page, nothing fetched.
    let url = authorization_url(
        &stack,
        "https://127.0.0.1/client.json",
        "http://localhost:1/cb",
        &pkce().1,
        &stack.gateway.mcp_url(),
    );
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    // PATs keep working beside OAuth.
    let pat = stack
        .sim
        .fixtures()
        .active_pat(e2e_tests::oauth::USER)
        .unwrap()
        .expose_secret()
        .to_owned();
    list_workspaces_with(&stack, &pat).await;
}

#[tokio::test]
async fn the_demo_serves_the_whole_oauth_flow() {
    let port = e2e_tests::free_port();
    let mut command = tokio::process::Command::new(e2e_tests::paths::binary("layer-mcp-gateway"));
    command
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("spawn demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.starts_with("Press Ctrl-C");
            banner.push(line);
            if done {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "demo banner: {banner:?}");
    let field = |prefix: &str| {
        banner
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .map(str::to_owned)
    };
    let mcp_url = field("MCP URL:").expect("MCP URL line");
    let (login, password) = field("Demo login:")
        .and_then(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
        .expect("login");
    let api = field("Layer simulator (its API):").expect("simulator line");
    let sim = api.trim_end_matches("/api/v1").to_owned();
    let gateway = mcp_url.trim_end_matches("/mcp").to_owned();
    // The OAuth instructions are printed too.
    assert!(banner.iter().any(|l| l.contains("OAuth")), "{banner:?}");
    let http = reqwest::Client::new();
    let reg = json_of(
        http.post(format!("{gateway}/register"))
            .json(&json!({"redirect_uris": ["http://127.0.0.1:45998/cb"], "token_endpoint_auth_method": "none"})),
    )
    .await;
    let client_id = reg["client_id"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:45998/cb";
    let url = oauth::authorization_url(
        &format!("{gateway}/authorize"),
        client_id,
        redirect,
        "s",
        &challenge,
        &[],
    );
    let walk = e2e_tests::oauth::Browser::new(&login, &password)
        .authorize(url.as_str(), &gateway, &sim)
        .await;
    let q = query(&walk.redirect.unwrap());
    let tokens = redeem_code(
        &format!("{gateway}/token"),
        client_id,
        &q["code"],
        redirect,
        &verifier,
    )
    .await;
    let access = tokens["access_token"].as_str().expect("access token");
    let client = mcp::connect(&mcp_url, access).await.expect("connect");
    let result = mcp::call(&client, "list_workspaces", json!({}))
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let _ = client.cancel().await;
    let _ = child.kill().await;
}
