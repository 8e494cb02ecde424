//! Child processes that log to a file and die with the test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running child process. Dropping it kills the process (SIGKILL), so a failed test leaves
/// nothing running behind it.
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` with stdout and stderr appended to `<logs_dir>/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, logs_dir: &Path) -> ChildProcess {
        std::fs::create_dir_all(logs_dir).expect("create logs dir");
        let log = logs_dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("open log file");
        let err = file.try_clone().expect("clone log handle");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err));
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

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log file this process writes to.
    pub fn log_path(&self) -> &PathBuf {
        &self.log
    }

    /// The log so far, for assertions and failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the process gets no chance to clean up (a crash). Waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process dies on SIGKILL too; continuing it first just keeps it tidy.
            let _ = signal(child.id(), "-CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `sig` (`"-STOP"`, `"-CONT"`, `"-TERM"`, …); whether it was delivered.
    pub fn signal(&self, sig: &str) -> bool {
        self.pid().is_some_and(|pid| signal(pid, sig))
    }

    /// SIGTERM, then wait up to `grace` for the exit; returns whether it exited in time.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        if self.child.is_none() {
            return true;
        }
        self.signal("-TERM");
        let deadline = Instant::now() + grace;
        loop {
            if !self.is_running() {
                self.child = None;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `kill <sig> <pid>`: signals std has no call for (SIGSTOP, SIGCONT, SIGTERM).
fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
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
