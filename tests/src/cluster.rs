//! Three gateway replicas sharing one Redis behind a round-robin proxy, as in production:
//! the simulator (Layer and its login), one Redis server, three `layer-mcp-gateway serve`
//! processes with `LAYER_MCP_REDIS_URL` and the same OAuth settings and secrets, and a
//! [`Proxy`] in front whose URL is every replica's public URL.
//!
//! OAuth is on: the simulator's identity provider, one shared encryption key, and no
//! `--store`, so with a Redis URL the OAuth state lives in that Redis. Each replica gets its own
//! data directory: replicas share nothing but Redis (and the simulator).

use std::path::PathBuf;
use std::time::Duration;

use layer_sim::SimConfig;
use secrecy::ExposeSecret;

use crate::gateway::{GatewayOptions, GatewayProcess};
use crate::oauth::{Browser, USER, oauth_args};
use crate::proxy::Proxy;
use crate::redis::RedisServer;
use crate::sim::TestSim;

/// The pause between taking a replica out of the rotation and SIGTERM (a `preStop` sleep).
pub const PRE_STOP: Duration = Duration::from_secs(1);

/// How many replicas a cluster runs.
pub const REPLICAS: usize = 3;

/// How a cluster is set up.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// The simulator's settings (admin is always on).
    pub sim: SimConfig,
    /// Extra `LAYER_MCP_*` variables for every replica.
    pub env: Vec<(String, String)>,
    /// Extra `serve` flags for every replica.
    pub args: Vec<String>,
    /// How many replicas (default [`REPLICAS`]).
    pub replicas: usize,
    /// The gateway binary (default: the debug build).
    pub binary: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            sim: SimConfig::for_tests(),
            env: Vec::new(),
            args: Vec::new(),
            replicas: REPLICAS,
            binary: None,
        }
    }
}

/// A running cluster; everything stops when it is dropped.
pub struct Cluster {
    pub sim: TestSim,
    pub proxy: Proxy,
    pub gateways: Vec<GatewayProcess>,
    redis: RedisServer,
    data_dirs: Vec<PathBuf>,
}

impl Cluster {
    /// Starts a cluster with default settings.
    pub async fn start() -> Cluster {
        Self::start_with(ClusterOptions::default()).await
    }

    pub async fn start_with(options: ClusterOptions) -> Cluster {
        let sim = TestSim::start_with(options.sim.clone()).await;
        let redis = RedisServer::start();
        let ports: Vec<u16> = (0..options.replicas).map(|_| crate::free_port()).collect();
        // The proxy first: its URL is every replica's public URL.
        let proxy = Proxy::start(&ports);
        let oauth_args = oauth_args(&sim.sim);
        let mut gateways = Vec::new();
        let mut data_dirs = Vec::new();
        for port in &ports {
            let data_dir = std::env::temp_dir()
                .join(format!("layer-mcp-cluster-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&data_dir).expect("data dir");
            let mut args = oauth_args.clone();
            args.push("--data-dir".into());
            args.push(data_dir.display().to_string());
            args.extend(options.args.iter().cloned());
            let mut env = vec![
                ("LAYER_MCP_REDIS_URL".to_owned(), redis.url()),
                ("LAYER_MCP_UPLOAD_ALLOW_HOSTS".to_owned(), sim.host_port()),
            ];
            env.extend(options.env.iter().cloned());
            data_dirs.push(data_dir);
            gateways.push(
                GatewayProcess::start(GatewayOptions {
                    layer_api_url: sim.api_url(),
                    args,
                    env,
                    port: Some(*port),
                    public_url: Some(proxy.origin()),
                    binary: options.binary.clone(),
                })
                .await,
            );
        }
        Cluster {
            sim,
            proxy,
            gateways,
            redis,
            data_dirs,
        }
    }

    /// The MCP endpoint, through the proxy.
    pub fn url(&self) -> String {
        self.proxy.url("/mcp")
    }

    /// The public origin (the proxy), no trailing slash.
    pub fn origin(&self) -> String {
        self.proxy.origin()
    }

    /// SIGKILL replica `i`, as a crash; it stays down until [`Cluster::start_replica`].
    pub async fn kill(&mut self, i: usize) {
        self.gateways[i].kill_hard().await;
    }

    /// Starts replica `i` again on its port (after [`Cluster::kill`]).
    pub async fn start_replica(&mut self, i: usize) {
        self.gateways[i].start_again().await;
    }

    /// A rolling-restart step as Kubernetes does it: replica `i` leaves the proxy's rotation
    /// (its endpoint is removed), a short pre-stop pause lets requests already routed to it
    /// arrive, then SIGTERM; it drains (calls in flight finish, streams close) and exits
    /// within `grace` (else SIGKILL), starts again on its port and rejoins the rotation once
    /// healthy. Returns whether it exited by itself.
    ///
    /// Without the first step a plain round robin keeps routing to the replica until its
    /// listener closes, and a request connected in that instant is reset: no server can
    /// answer a connection its kernel accepted after the process stopped accepting.
    pub async fn restart_with_grace(&mut self, i: usize, grace: Duration) -> bool {
        self.proxy.set_in_rotation(i, false);
        tokio::time::sleep(PRE_STOP).await;
        let exited = self.gateways[i].stop_gracefully(grace).await;
        self.gateways[i].start_again().await;
        self.proxy.set_in_rotation(i, true);
        exited
    }

    /// [`Cluster::restart_with_grace`] with 30 s of grace.
    pub async fn restart(&mut self, i: usize) -> bool {
        self.restart_with_grace(i, Duration::from_secs(30)).await
    }

    /// Stops Redis (SIGKILL: it keeps nothing on disk, so it comes back empty).
    pub async fn stop_redis(&mut self) {
        self.redis.kill();
    }

    /// Starts Redis again on the same port.
    pub async fn start_redis(&mut self) {
        self.redis.start_again();
    }

    /// A fixture user's PAT.
    pub fn pat(&self, login: &str) -> String {
        self.sim.pat(login)
    }

    /// A browser that logs in as the test user (alice).
    pub fn browser(&self) -> Browser {
        let user = self.sim.sim.fixtures().user(USER).expect("alice");
        Browser::new(&user.login, user.password.expose_secret())
    }

    /// `/readyz` of replica `i`, asked directly: (status, body).
    pub async fn readyz(&self, i: usize) -> (u16, String) {
        match reqwest::get(self.gateways[i].local_url("/readyz")).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// Every replica's log, for failure messages.
    pub fn logs(&self) -> String {
        self.gateways
            .iter()
            .enumerate()
            .map(|(i, g)| format!("--- replica {i}\n{}", tail(&g.log_text(), 60)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for dir in &self.data_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
