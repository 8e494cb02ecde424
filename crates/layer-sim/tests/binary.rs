//! The `layer-sim` binary: `--help` names every flag, and a started process prints where it
//! listens and the fixture credentials, then serves.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn help_explains_every_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_layer-sim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--fixtures",
        "--speed",
        "--run-duration",
        "--enable-admin",
        "--public-url",
        "--access-token-ttl",
        "--poll-interval",
        "--seed",
        "--max-concurrent-runs",
        "--redirect-uri",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn prints_its_address_and_credentials_then_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_layer-sim"))
        .args(["--listen", "127.0.0.1:0", "--speed", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("OAuth client layer-cli");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    let url = seen[0]
        .strip_prefix("Listening on ")
        .expect("first line names the address")
        .to_owned();
    assert!(text.contains("PAT alice: layer_pat_sim_alice_4f9c2a7e81d3b605"));
    assert!(text.contains("Password bob: bob-sim-password"));
    assert!(text.contains("PAT carol: "));

    // It answers on the printed address.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/api/v1/workspaces"))
            .bearer_auth("layer_pat_sim_alice_4f9c2a7e81d3b605")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn fixtures_file_is_loaded_and_bad_ones_refused() {
    let dir = std::env::temp_dir().join(format!("layer-sim-fixtures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_layer-sim"))
        .arg("--print-fixtures")
        .output()
        .unwrap();
    let mut fixtures: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    fixtures["users"][0]["pats"][0]["token"] = "custom-token-for-test".into();
    let good = dir.join("f.json");
    std::fs::write(&good, fixtures.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_layer-sim"))
        .args(["--listen", "127.0.0.1:0", "--fixtures"])
        .arg(&good)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let found = lines
        .by_ref()
        .take(12)
        .map(|l| l.unwrap())
        .any(|l| l == "PAT alice: custom-token-for-test");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(found);

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "users = 3").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_layer-sim"))
        .args(["--listen", "127.0.0.1:0", "--fixtures"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid TOML"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn impossible_settings_are_refused_with_a_message() {
    for args in [
        &["--speed", "0"][..],
        &["--run-duration=-1"][..],
        &["--access-token-ttl", "999999999999"][..],
        &["--max-concurrent-runs", "0"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_layer-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("layer-sim:"),
            "{args:?}"
        );
    }
}
