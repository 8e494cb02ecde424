//! The Layer simulator, in-process, with its admin API (`/_sim/*`) for setting faults,
//! steering runs and asserting on what Layer saw.

use std::time::Duration;

use layer_sim::{RunningSim, SimConfig};
use secrecy::ExposeSecret;
use serde_json::Value;
use test_support::sim::SimAdmin;

pub use layer_sim::catalogue_ids;
pub use layer_sim::prompt_triggers;

/// A running simulator with admin enabled; stopped when dropped (its runtime ends).
pub struct TestSim {
    pub sim: RunningSim,
    admin: SimAdmin,
}

impl TestSim {
    /// A simulator for tests: port 0, admin on, runs that finish in about 200 ms.
    pub async fn start() -> TestSim {
        Self::start_with(SimConfig::for_tests()).await
    }

    /// Runs that take `run_duration` (e.g. long enough to hold places in a cap test).
    pub async fn start_with_run_duration(run_duration: Duration) -> TestSim {
        Self::start_with(SimConfig {
            run_duration,
            ..SimConfig::for_tests()
        })
        .await
    }

    pub async fn start_with(mut config: SimConfig) -> TestSim {
        config.enable_admin = true;
        let sim = layer_sim::start(config).await.expect("start the simulator");
        let admin = SimAdmin::new(sim.base_url().as_str());
        TestSim { sim, admin }
    }

    /// The v1 API base, e.g. `http://127.0.0.1:PORT/api/v1`.
    pub fn api_url(&self) -> String {
        self.sim.api_url().as_str().trim_end_matches('/').to_owned()
    }

    /// The origin, e.g. `http://127.0.0.1:PORT` (no trailing slash).
    pub fn origin(&self) -> String {
        self.sim
            .base_url()
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    }

    /// `host:port` of the simulator, for the gateway's upload allow-list.
    pub fn host_port(&self) -> String {
        self.sim.local_addr().to_string()
    }

    pub async fn shutdown(self) {
        self.sim.shutdown().await;
    }

    /// A fixture user's working PAT (`alice`, `bob`, `carol`).
    pub fn pat(&self, login: &str) -> String {
        self.sim
            .fixtures()
            .active_pat(login)
            .unwrap_or_else(|| panic!("no active PAT for {login}"))
            .expose_secret()
            .to_owned()
    }

    /// A fixture user's revoked PAT.
    pub fn revoked_pat(&self, login: &str) -> String {
        self.sim
            .fixtures()
            .revoked_pat(login)
            .unwrap_or_else(|| panic!("no revoked PAT for {login}"))
            .expose_secret()
            .to_owned()
    }

    /// A fixture user's login password (for the IdP's form).
    pub fn password(&self, login: &str) -> String {
        self.sim
            .fixtures()
            .user(login)
            .unwrap_or_else(|| panic!("no user {login}"))
            .password
            .expose_secret()
            .to_owned()
    }

    /// The id of a fixture workspace by slug (`acme-studio`, `alice-personal`, `bob-sandbox`).
    pub fn workspace_id(&self, slug: &str) -> String {
        self.sim
            .fixtures()
            .workspace_id(slug)
            .unwrap_or_else(|| panic!("no workspace {slug}"))
            .to_string()
    }

    /// The admin API (`/_sim/*`): state, faults, run control.
    pub fn admin(&self) -> &SimAdmin {
        &self.admin
    }

    /// `GET /_sim/state`: balances, runs, concurrency high-water marks, counters.
    pub async fn state(&self) -> Value {
        self.admin.state().await
    }

    /// The runs the simulator has, as JSON objects.
    pub async fn runs(&self) -> Vec<Value> {
        self.admin.runs().await
    }

    /// The highest number of unfinished runs the simulator ever saw for (user, workspace).
    pub async fn max_unfinished_runs(&self, login: &str, workspace_id: &str) -> u64 {
        self.admin.max_unfinished_runs(login, workspace_id).await
    }

    /// A counter from the state's `counters` object (`runs_created`, `rate_limited`, …).
    pub async fn counter(&self, name: &str) -> u64 {
        self.admin.counter(name).await
    }

    /// A workspace's entry in the state (balances).
    pub async fn workspace_state(&self, workspace_id: &str) -> Value {
        self.admin.workspace(workspace_id).await
    }

    /// Adds fault rules (`POST /_sim/faults`); see the simulator README for their shape.
    pub async fn add_faults(&self, spec: Value) -> Value {
        self.admin.add_faults(spec).await
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) {
        self.admin.clear_faults().await;
    }

    /// Finishes a held or running run now (`complete` / `success`).
    pub async fn finish_run(&self, run_id: &str) -> Value {
        self.admin.finish_run(run_id).await
    }

    /// Finishes every run that is not finished yet.
    pub async fn finish_all_runs(&self) {
        self.admin.finish_all_runs().await;
    }
}
