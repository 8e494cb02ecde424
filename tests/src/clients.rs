//! The real MCP clients from npm and PyPI, run as their users run them.
//!
//! Each client run gets its own empty `HOME`, because Claude Code, Gemini CLI and mcp-remote
//! keep configuration and OAuth state there: tests must not see each other's, or the
//! developer's.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

use crate::paths::clients_dir;

/// `tests/clients/node_modules/.bin`.
pub fn npm_bin_dir() -> PathBuf {
    clients_dir().join("node_modules").join(".bin")
}

/// The Node 22 installed from npm (the Inspector needs 22; the machine's node is 20).
pub fn node22() -> PathBuf {
    clients_dir()
        .join("node_modules")
        .join("node")
        .join("bin")
        .join("node")
}

/// The Python of the clients' virtualenv (has the `mcp` package).
pub fn python() -> PathBuf {
    clients_dir().join(".venv").join("bin").join("python")
}

/// A throwaway home directory for one client run; removed on drop.
pub struct ClientHome {
    dir: PathBuf,
}

impl ClientHome {
    pub fn new(label: &str) -> ClientHome {
        let dir = std::env::temp_dir().join(format!(
            "layer-mcp-client-{label}-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create client home");
        ClientHome { dir }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A folder `name` in the home, made if need be (e.g. the project a CLI runs from).
    pub fn folder(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("create a folder in the client home");
        dir
    }
}

impl Drop for ClientHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command for an npm-installed client binary (`claude`, `gemini`, `mcp-inspector`,
/// `mcp-remote-client`, …) with Node 22 first on `PATH` and `HOME` set to `home`.
pub fn npm_command(bin: &str, home: &ClientHome) -> Command {
    let mut command = Command::new(npm_bin_dir().join(bin));
    let node_dir = node22().parent().expect("node dir").to_path_buf();
    let path = std::env::var("PATH").unwrap_or_default();
    command
        .env(
            "PATH",
            format!("{}:{}:{path}", node_dir.display(), npm_bin_dir().display()),
        )
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .env("NO_COLOR", "1")
        .env("CI", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DO_NOT_TRACK", "1")
        .kill_on_drop(true);
    command
}

/// A command running `node` 22 on a script (e.g. one under `tests/clients/`).
pub fn node_script(script: &Path, home: &ClientHome) -> Command {
    let mut command = script_command(node22(), script, home);
    command
        .env("NODE_PATH", clients_dir().join("node_modules"))
        .current_dir(clients_dir());
    command
}

/// A command running the clients' Python on a script.
pub fn python_script(script: &Path, home: &ClientHome) -> Command {
    let mut command = script_command(python(), script, home);
    command.env("PYTHONUNBUFFERED", "1");
    command
}

/// `interpreter` on `script` with `HOME` set to `home`, killed if the test drops it.
fn script_command(interpreter: PathBuf, script: &Path, home: &ClientHome) -> Command {
    let mut command = Command::new(interpreter);
    command
        .arg(script)
        .env("HOME", home.path())
        .kill_on_drop(true);
    command
}

/// Runs mcp-remote's client against `url` with a bearer `Authorization` header until it exits
/// (at most `timeout`); returns whether it succeeded and what it logged.
pub async fn mcp_remote_with_header(
    home: &ClientHome,
    url: &str,
    token: &str,
    timeout: Duration,
) -> (bool, String) {
    let mut command = npm_command("mcp-remote-client", home);
    // Node writes to a pipe asynchronously and mcp-remote exits right after printing the
    // tools, which can cut the output short: log to a file, whose writes are synchronous.
    let log_path = home.path().join("mcp-remote.log");
    let log_file = std::fs::File::create(&log_path).expect("create the mcp-remote log");
    command
        .args([url, "--header", &format!("Authorization: Bearer {token}")])
        // mcp-remote shuts down when its stdin ends: keep it open.
        .stdin(std::process::Stdio::piped())
        .stdout(log_file.try_clone().expect("clone the log file"))
        .stderr(log_file);
    let mut child = command.spawn().expect("spawn mcp-remote-client");
    let stdin = child.stdin.take();
    let status = tokio::time::timeout(timeout, child.wait())
        .await
        .expect("mcp-remote-client finishes")
        .expect("wait for mcp-remote-client");
    drop(stdin);
    let log = std::fs::read_to_string(&log_path).expect("read the mcp-remote log");
    (status.success(), log)
}

/// Runs `command` to completion, failing the test if it takes longer than `timeout`.
/// Returns the output whatever the exit status, so tests can assert on failures too.
pub async fn run(mut command: Command, timeout: Duration) -> Output {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let description = format!("{:?}", command.as_std());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {description}: {e}"));
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("waiting for {description}: {e}"),
        Err(_) => panic!("{description} did not finish within {timeout:?}"),
    }
}

/// stdout and stderr of an output as one string, for assertions and failure messages.
pub fn text(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The rest of the next line of a client's output starting with `prefix` (how the client
/// scripts report what they got), or `None` if the output ends or `timeout` passes first.
pub async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    prefix: &str,
    timeout: Duration,
) -> Option<String> {
    tokio::time::timeout(timeout, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.trim().to_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// The Python SDK's OAuth client (`tests/clients/scripts/python_oauth.py`) with a test
/// playing the person at the browser: it prints `AUTHORIZE <url>`, reads the redirect back
/// on its stdin, then prints its results as lines `NAME <json>`.
pub struct PythonOAuthClient {
    child: tokio::process::Child,
    // Kept open while the client works: it reads the redirect from it.
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl PythonOAuthClient {
    /// Starts it against the MCP endpoint `url`, with `env` added to its environment.
    pub fn start(home: &ClientHome, url: &str, env: &[(&str, &str)]) -> PythonOAuthClient {
        use std::process::Stdio;
        use tokio::io::AsyncBufReadExt;

        let script = crate::paths::workspace_root().join("tests/clients/scripts/python_oauth.py");
        let mut command = python_script(&script, home);
        command
            .arg(url)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn python");
        let stdin = child.stdin.take().expect("python's stdin");
        let stdout = child.stdout.take().expect("python's stdout");
        PythonOAuthClient {
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// The rest of the next line it prints starting with `prefix`, if one comes in `timeout`.
    pub async fn next_line(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        next_line(&mut self.lines, prefix, timeout).await
    }

    /// The rest of the next lines starting with each of `prefixes`, in that order, each
    /// within `timeout`; `None` as soon as one does not come.
    pub async fn next_lines<const N: usize>(
        &mut self,
        prefixes: [&str; N],
        timeout: Duration,
    ) -> Option<[String; N]> {
        let mut found = Vec::with_capacity(N);
        for prefix in prefixes {
            found.push(self.next_line(prefix, timeout).await?);
        }
        found.try_into().ok()
    }

    /// Hands it the redirect the browser was sent to.
    pub async fn send_redirect(&mut self, redirect: &url::Url) {
        use tokio::io::AsyncWriteExt;

        self.stdin
            .write_all(format!("{redirect}\n").as_bytes())
            .await
            .expect("write the redirect");
        self.stdin.flush().await.expect("flush the redirect");
    }

    /// What is left of its output, once it has exited: for a failure message.
    pub async fn rest_of_output(self) -> String {
        let PythonOAuthClient {
            child,
            stdin: _open,
            ..
        } = self;
        text(&child.wait_with_output().await.expect("wait for python"))
    }

    /// Waits for it to exit.
    pub async fn wait(mut self) {
        let _ = self.child.wait().await;
    }
}
