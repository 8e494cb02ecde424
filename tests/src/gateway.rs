//! Gateway processes (`layer-mcp-gateway serve`) on free loopback ports.

use std::time::Duration;

use std::process::Command;

use crate::process::{ChildProcess, wait_until_ok};

/// How to start one gateway.
#[derive(Clone, Debug, Default)]
pub struct GatewayOptions {
    /// The Layer API the gateway forwards to (e.g. a simulator's `…/api/v1`).
    pub layer_api_url: String,
    /// Extra command-line arguments after `serve`.
    pub args: Vec<String>,
    /// Extra environment variables (`LAYER_MCP_*`).
    pub env: Vec<(String, String)>,
    /// Listen on this port instead of a fresh one (a restart keeps its URL).
    pub port: Option<u16>,
    /// The public origin; defaults to `http://127.0.0.1:<port>`.
    pub public_url: Option<String>,
    /// The gateway binary; defaults to the workspace's debug build (benchmarks pass a
    /// release build).
    pub binary: Option<std::path::PathBuf>,
}

/// Environment variables for [`GatewayOptions::env`], from literal pairs.
pub fn env_vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A running gateway process; killed when dropped.
pub struct GatewayProcess {
    pub port: u16,
    pub public_url: String,
    options: GatewayOptions,
    process: ChildProcess,
}

impl GatewayProcess {
    pub async fn start(options: GatewayOptions) -> GatewayProcess {
        let port = options.port.unwrap_or_else(crate::free_port);
        let public_url = options
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}"));
        let binary = options
            .binary
            .clone()
            .unwrap_or_else(|| crate::paths::binary("layer-mcp-gateway"));
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--public-url")
            .arg(&public_url)
            .arg("--layer-api-url")
            .arg(&options.layer_api_url)
            .args(&options.args)
            .env("RUST_LOG", "info,gateway=debug")
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let process = ChildProcess::spawn(
            &format!("gateway-{port}"),
            command,
            &crate::paths::logs_dir(),
        );
        let gateway = GatewayProcess {
            port,
            public_url,
            options,
            process,
        };
        // Its own address, not the public URL: behind a proxy, another replica would answer.
        if let Err(e) = wait_until_ok(&gateway.local_url("/healthz"), Duration::from_secs(30)).await
        {
            panic!("gateway did not start: {e}\n{}", gateway.process.log_text());
        }
        gateway
    }

    /// `<public url><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }

    /// `http://127.0.0.1:<port><path>`: this process, whatever the public URL is.
    pub fn local_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The MCP endpoint.
    pub fn mcp_url(&self) -> String {
        self.url("/mcp")
    }

    pub fn process(&mut self) -> &mut ChildProcess {
        &mut self.process
    }

    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// SIGKILL, as a crashing replica.
    pub async fn kill_hard(&mut self) {
        self.process.kill();
    }

    /// Starts a new process with the same options and port.
    pub async fn restart(&mut self) {
        self.process.kill();
        self.start_again().await;
    }

    /// SIGTERM and wait up to `grace` for the process to drain and exit (SIGKILL after
    /// that); returns whether it exited by itself in time.
    pub async fn stop_gracefully(&mut self, grace: Duration) -> bool {
        let exited = self.process.terminate(grace).await;
        if !exited {
            self.process.kill();
        }
        exited
    }

    /// Starts a new process with the same options and port (after a stop or a kill).
    pub async fn start_again(&mut self) {
        let mut options = self.options.clone();
        options.port = Some(self.port);
        options.public_url = Some(self.public_url.clone());
        *self = GatewayProcess::start(options).await;
    }
}
