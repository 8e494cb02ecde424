//! The binary: `serve` refuses bad settings at start, naming them; `serve` and `demo` run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_layer-mcp-gateway");

async fn serve_fails(args: &[&str], env: &[(&str, &str)], config: Option<&str>) -> String {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .kill_on_drop(true);
    let path = config.map(|text| {
        let path = std::env::temp_dir().join(format!("gateway-cli-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        path
    });
    if let Some(path) = &path {
        command.arg("--config").arg(path);
    }
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("exits")
        .unwrap();
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
    assert_eq!(
        output.status.code(),
        Some(2),
        "a bad setting stops the gateway with status 2"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn bad_settings_stop_serve_with_a_message_naming_them() {
    let text = serve_fails(&["--public-url", "mcp.example.com"], &[], None).await;
    assert!(
        text.contains("`public_url`") && text.contains("--public-url"),
        "{text}"
    );
    let text = serve_fails(
        &["--listen", "127.0.0.1:0"],
        &[("LAYER_MCP_PAT_CACHE_TTL_SECS", "soon")],
        None,
    )
    .await;
    assert!(
        text.contains("`pat_cache_ttl_secs`") && text.contains("LAYER_MCP_PAT_CACHE_TTL_SECS"),
        "{text}"
    );
    let text = serve_fails(
        &["--listen", "127.0.0.1:0"],
        &[("LAYER_MCP_MAX_SESSIONS_PER_USER", "0")],
        None,
    )
    .await;
    assert!(
        text.contains("`max_sessions_per_user`")
            && text.contains("LAYER_MCP_MAX_SESSIONS_PER_USER"),
        "{text}"
    );
    let text = serve_fails(
        &["--listen", "127.0.0.1:0"],
        &[],
        Some("lisen = \"127.0.0.1:1\"\n"),
    )
    .await;
    assert!(text.contains("unknown setting `lisen`"), "{text}");
    let text = serve_fails(
        &["--listen", "127.0.0.1:0"],
        &[],
        Some("layer_api_url = \"ftp://layer\"\n"),
    )
    .await;
    assert!(
        text.contains("`layer_api_url`") && text.contains("config file"),
        "{text}"
    );
    let text = serve_fails(&["--layer-api-url", "not a url"], &[], None).await;
    assert!(text.contains("`layer_api_url`"), "{text}");
}

#[tokio::test]
async fn bad_secret_settings_stop_serve_without_showing_them() {
    let oauth = [
        ("LAYER_MCP_OAUTH_IDP_ISSUER", "https://login.example/"),
        ("LAYER_MCP_OAUTH_IDP_CLIENT_ID", "gw"),
        ("LAYER_MCP_OAUTH_IDP_CLIENT_SECRET", "client-hunter2"),
    ];
    let mut env = oauth.to_vec();
    env.push(("LAYER_MCP_OAUTH_ENCRYPTION_KEY", "key-hunter2"));
    let text = serve_fails(&["--listen", "127.0.0.1:0"], &env, None).await;
    assert!(
        text.contains("`oauth_encryption_key`")
            && text.contains("LAYER_MCP_OAUTH_ENCRYPTION_KEY")
            && !text.contains("hunter2"),
        "{text}"
    );
    let text = serve_fails(
        &[
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "http://:hunter2@redis.internal:6379",
        ],
        &[],
        None,
    )
    .await;
    assert!(
        text.contains("`redis_url`") && text.contains("--redis-url") && !text.contains("hunter2"),
        "{text}"
    );
    // An OAuth lifetime under its old variable name is read, and checked.
    let mut env = oauth.to_vec();
    env.push(("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL", "0"));
    let text = serve_fails(&["--listen", "127.0.0.1:0"], &env, None).await;
    assert!(
        text.contains("`oauth_access_token_ttl_secs`")
            && text.contains("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL)")
            && !text.contains("hunter2"),
        "{text}"
    );
    let text = serve_fails(
        &["--listen", "127.0.0.1:0"],
        &[],
        Some("oauth_idp_client_id = \"gw\"\noauth_idp_client_secret = \"hunter2\"\n"),
    )
    .await;
    assert!(
        text.contains("`oauth_idp_issuer`") && !text.contains("hunter2"),
        "{text}"
    );
}

#[tokio::test]
async fn serve_reads_flags_and_serves_mcp() {
    let sim = layer_sim::start(layer_sim::SimConfig::for_tests())
        .await
        .unwrap();
    let common::Served {
        mut child,
        port,
        logs: reader,
    } = common::serve(
        &sim,
        &[],
        &[
            ("LAYER_MCP_MAX_SESSIONS_PER_USER", "4"),
            ("LAYER_MCP_NOT_A_SETTING", "1"),
            // OAuth settings are settings like the others (OAuth stays off without a client id).
            ("LAYER_MCP_OAUTH_IDP_AUDIENCE", "https://api.example/"),
            ("LAYER_MCP_OAUTH_REFRESH_GRACE", "5"),
            ("RUST_LOG", "trace"),
        ],
    );
    let mut client = common::served_client(port, &sim, "2025-06-18").await;
    client.initialize().await;
    assert_eq!(
        client.list_tools().await.result()["tools"]
            .as_array()
            .unwrap()
            .len(),
        18
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;
    // The PAT never appears in the logs, even at trace level.
    let logs = reader.await.unwrap();
    assert!(logs.contains("gateway listening"), "{logs}");
    assert!(
        logs.contains("ignoring environment variable LAYER_MCP_NOT_A_SETTING"),
        "{logs}"
    );
    assert!(
        !logs.contains("ignoring environment variable LAYER_MCP_OAUTH"),
        "{logs}"
    );
    assert!(
        !logs.contains(client.pat.as_deref().unwrap()),
        "the PAT leaked into the logs"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn demo_prints_the_url_the_pat_and_the_login_then_serves() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    while banner.len() < 40 {
        match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                let last = line.starts_with("Press Ctrl-C");
                banner.push(line);
                if last {
                    break;
                }
            }
            _ => break,
        }
    }
    let text = banner.join("\n");
    let url = format!("http://127.0.0.1:{port}/mcp");
    assert_eq!(banner[0], format!("MCP URL: {url}"), "{text}");
    let pat = banner[1]
        .strip_prefix("Demo PAT: ")
        .expect("a PAT line")
        .to_owned();
    assert!(banner[2].starts_with("Demo login: alice "), "{text}");
    for client in [
        "claude mcp add --transport http",
        "gemini mcp add",
        "mcp-remote",
        "streamableHttp",
    ] {
        assert!(text.contains(client), "setup for {client}: {text}");
    }
    let mut client = common::Raw {
        http: reqwest::Client::new(),
        url,
        pat: Some(pat),
        session: None,
        version: "2025-11-25".into(),
        next_id: 1,
    };
    client.initialize().await;
    let workspaces = client.ok("list_workspaces", serde_json::json!({})).await;
    assert_eq!(workspaces["workspaces"].as_array().unwrap().len(), 2);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}
