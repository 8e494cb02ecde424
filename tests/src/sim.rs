//! The Layer simulator, in-process, with its admin API (`/_sim/*`) for setting faults,
//! steering runs and asserting on what Layer saw.

use std::time::Duration;

use layer_sim::{RunningSim, SimConfig};
use secrecy::ExposeSecret;
use serde_json::Value;

pub use layer_sim::catalogue_ids;
pub use layer_sim::prompt_triggers;

/// A running simulator with admin enabled; stopped when dropped (its runtime ends).
pub struct TestSim {
    pub sim: RunningSim,
    http: reqwest::Client,
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
        TestSim {
            sim,
            http: reqwest::Client::new(),
        }
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

    /// `GET /_sim/state`: balances, runs, concurrency high-water marks, counters.
    pub async fn state(&self) -> Value {
        self.admin_get("/_sim/state").await
    }

    /// The runs the simulator has, as JSON objects.
    pub async fn runs(&self) -> Vec<Value> {
        self.state().await["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The highest number of unfinished runs the simulator ever saw for (user, workspace).
    pub async fn max_unfinished_runs(&self, login: &str, workspace_id: &str) -> u64 {
        let state = self.state().await;
        state["concurrency"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["user"] == login && c["workspace_id"] == workspace_id)
            .and_then(|c| c["max_unfinished_runs"].as_u64())
            .unwrap_or(0)
    }

    /// A counter from the state's `counters` object (`runs_created`, `rate_limited`, …).
    pub async fn counter(&self, name: &str) -> u64 {
        self.state().await["counters"][name].as_u64().unwrap_or(0)
    }

    /// A workspace's entry in the state (balances).
    pub async fn workspace_state(&self, workspace_id: &str) -> Value {
        self.state().await["workspaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["workspace_id"] == workspace_id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Adds fault rules (`POST /_sim/faults`); see the simulator README for their shape.
    pub async fn add_faults(&self, spec: Value) -> Value {
        self.admin_send(reqwest::Method::POST, "/_sim/faults", Some(spec))
            .await
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) {
        self.admin_send(reqwest::Method::DELETE, "/_sim/faults", None)
            .await;
    }

    /// Finishes a held or running run now (`complete` / `success`).
    pub async fn finish_run(&self, run_id: &str) -> Value {
        self.admin_send(
            reqwest::Method::POST,
            &format!("/_sim/runs/{run_id}/finish"),
            None,
        )
        .await
    }

    /// Finishes every run that is not finished yet.
    pub async fn finish_all_runs(&self) {
        for run in self.runs().await {
            let status = run["status"].as_str().unwrap_or_default();
            if matches!(status, "in_progress" | "pending" | "running") {
                let id = run["id"].as_str().unwrap_or_default().to_owned();
                self.finish_run(&id).await;
            }
        }
    }

    async fn admin_get(&self, path: &str) -> Value {
        self.admin_send(reqwest::Method::GET, path, None).await
    }

    async fn admin_send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.origin());
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{url}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}
