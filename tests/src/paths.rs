//! Where things are: the workspace, the built binaries, the installed clients.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory the tests were built into.
pub fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // The test binary lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The path of a workspace binary, built (once per test process) if it is stale or missing.
///
/// `cargo test` does not build the binaries of other packages, and a stale gateway binary
/// would test old code, so the first call runs `cargo build --bins` for the workspace.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--bins", "--quiet"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --workspace --bins failed");
    });
    let path = target_dir().join("debug").join(name);
    assert!(path.exists(), "binary {} not found", path.display());
    path
}

/// The folder holding the npm `node_modules` and the Python `.venv` of the real clients.
/// `E2E_CLIENTS_DIR` overrides it (a worktree can share the main checkout's install).
pub fn clients_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("E2E_CLIENTS_DIR") {
        return PathBuf::from(dir);
    }
    workspace_root().join("tests").join("clients")
}

/// Where child processes write their logs (`tests/artifacts/logs`).
pub fn logs_dir() -> PathBuf {
    artifacts_dir().join("logs")
}

/// Where tests write what a person may want to look at afterwards (logs, screenshots).
pub fn artifacts_dir() -> PathBuf {
    let dir = workspace_root().join("tests").join("artifacts");
    std::fs::create_dir_all(&dir).expect("create tests/artifacts");
    dir
}
