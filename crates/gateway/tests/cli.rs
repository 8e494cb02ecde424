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

/// A bad setting: `serve`'s flags, its environment and its config file.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], Option<&'a str>);

/// `serve` stops on the bad setting with a message naming everything in `named`; the message.
async fn fails_naming((args, env, config): Case<'_>, named: &[&str]) -> String {
    let text = serve_fails(args, env, config).await;
    for name in named {
        assert!(text.contains(name), "{name}: {text}");
    }
    text
}

#[tokio::test]
async fn bad_settings_stop_serve_with_a_message_naming_them() {
    // Each bad setting (flags, environment, config file) and what the message must name.
    let listen: &[&str] = &["--listen", "127.0.0.1:0"];
    let cases: [(Case, &[&str]); 6] = [
        (
            (&["--public-url", "mcp.example.com"], &[], None),
            &["`public_url`", "--public-url"],
        ),
        (
            (listen, &[("LAYER_MCP_PAT_CACHE_TTL_SECS", "soon")], None),
            &["`pat_cache_ttl_secs`", "LAYER_MCP_PAT_CACHE_TTL_SECS"],
        ),
        (
            (listen, &[("LAYER_MCP_MAX_SESSIONS_PER_USER", "0")], None),
            &["`max_sessions_per_user`", "LAYER_MCP_MAX_SESSIONS_PER_USER"],
        ),
        (
            (listen, &[], Some("lisen = \"127.0.0.1:1\"\n")),
            &["unknown setting `lisen`"],
        ),
        (
            (listen, &[], Some("layer_api_url = \"ftp://layer\"\n")),
            &["`layer_api_url`", "config file"],
        ),
        (
            (&["--layer-api-url", "not a url"], &[], None),
            &["`layer_api_url`"],
        ),
    ];
    for (case, named) in cases {
        fails_naming(case, named).await;
    }
}

#[tokio::test]
async fn bad_secret_settings_stop_serve_without_showing_them() {
    let oauth = [
        ("LAYER_MCP_OAUTH_IDP_ISSUER", "https://login.example/"),
        ("LAYER_MCP_OAUTH_IDP_CLIENT_ID", "gw"),
        ("LAYER_MCP_OAUTH_IDP_CLIENT_SECRET", "client-hunter2"),
    ];
    let mut bad_key = oauth.to_vec();
    bad_key.push(("LAYER_MCP_OAUTH_ENCRYPTION_KEY", "key-hunter2"));
    // An OAuth lifetime under its old variable name is read, and checked.
    let mut old_ttl = oauth.to_vec();
    old_ttl.push(("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL", "0"));
    let listen: &[&str] = &["--listen", "127.0.0.1:0"];
    let cases: [(Case, &[&str]); 4] = [
        (
            (listen, &bad_key, None),
            &["`oauth_encryption_key`", "LAYER_MCP_OAUTH_ENCRYPTION_KEY"],
        ),
        (
            (
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--redis-url",
                    "http://:hunter2@redis.internal:6379",
                ],
                &[],
                None,
            ),
            &["`redis_url`", "--redis-url"],
        ),
        (
            (listen, &old_ttl, None),
            &[
                "`oauth_access_token_ttl_secs`",
                "LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL)",
            ],
        ),
        (
            (
                listen,
                &[],
                Some("oauth_idp_client_id = \"gw\"\noauth_idp_client_secret = \"hunter2\"\n"),
            ),
            &["`oauth_idp_issuer`"],
        ),
    ];
    for (case, named) in cases {
        let text = fails_naming(case, named).await;
        assert!(!text.contains("hunter2"), "{text}");
    }
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
