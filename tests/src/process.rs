//! Child processes that log to a file and die with the test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A running child process. Dropping it kills the process (SIGKILL).
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` with stdout and stderr appended to `tests/artifacts/logs/<name>.log`.
    pub fn spawn(name: &str, mut command: Command) -> ChildProcess {
        let logs = crate::paths::artifacts_dir().join("logs");
        std::fs::create_dir_all(&logs).expect("create logs dir");
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log file");
        let err = file.try_clone().expect("clone log handle");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        ChildProcess {
            name: name.to_owned(),
            child: Some(child),
            log,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The log file this process writes to.
    pub fn log_path(&self) -> &PathBuf {
        &self.log
    }

    /// The log so far, for assertions and failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the process gets no chance to clean up (a crashed replica).
    pub async fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERM, then wait up to `grace` for the exit; returns whether it exited in time.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let exited = tokio::time::timeout(grace, child.wait()).await.is_ok();
        if exited {
            self.child = None;
        }
        exited
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// Polls `url` until it answers with a success status or `timeout` passes.
pub async fn wait_until_ok(url: &str, timeout: Duration) -> Result<(), String> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match http.get(url).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("status {}", resp.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{url} not ready after {timeout:?}: {last}"))
}
