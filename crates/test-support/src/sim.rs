//! The Layer simulator's admin API (`/_sim/*`, served with `enable_admin`), over plain HTTP:
//! state for assertions, fault rules, run control, uploaded bytes. Every call fails the test
//! unless the simulator answers with a success status.

use reqwest::Method;
use serde_json::Value;

/// An admin client for the simulator at `origin`.
#[derive(Clone, Debug)]
pub struct SimAdmin {
    http: reqwest::Client,
    origin: String,
}

impl SimAdmin {
    /// `origin` is the simulator's base URL (a trailing `/` is fine).
    pub fn new(origin: &str) -> SimAdmin {
        SimAdmin {
            http: reqwest::Client::new(),
            origin: origin.trim_end_matches('/').to_owned(),
        }
    }

    /// `GET /_sim/state`: balances, runs, concurrency high-water marks, counters.
    pub async fn state(&self) -> Value {
        self.send(Method::GET, "/_sim/state", None).await
    }

    /// A counter from the state's `counters` object (`runs_created`, `rate_limited`, …);
    /// 0 when absent.
    pub async fn counter(&self, name: &str) -> u64 {
        self.state().await["counters"][name].as_u64().unwrap_or(0)
    }

    /// Requests the simulator's API (not its admin endpoints) has served.
    pub async fn api_requests(&self) -> u64 {
        self.state().await["counters"]["requests"]
            .as_object()
            .map(|by_route| {
                by_route
                    .iter()
                    .filter(|(route, _)| route.contains("/api/v1"))
                    .filter_map(|(_, n)| n.as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The runs the simulator has, as JSON objects.
    pub async fn runs(&self) -> Vec<Value> {
        self.state().await["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A workspace's entry in the state (balances); `Null` if unknown.
    pub async fn workspace(&self, workspace_id: &str) -> Value {
        self.state().await["workspaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["workspace_id"] == workspace_id)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The highest number of unfinished runs the simulator ever saw for (user, workspace);
    /// 0 if it saw none (a state without its `concurrency` list fails the test).
    pub async fn max_unfinished_runs(&self, login: &str, workspace_id: &str) -> u64 {
        self.state().await["concurrency"]
            .as_array()
            .expect("the state lists concurrency")
            .iter()
            .find(|c| c["user"] == login && c["workspace_id"] == workspace_id)
            .and_then(|c| c["max_unfinished_runs"].as_u64())
            .unwrap_or(0)
    }

    /// Adds fault rules (`POST /_sim/faults`); see the simulator README for their shape.
    pub async fn add_faults(&self, spec: Value) -> Value {
        self.send(Method::POST, "/_sim/faults", Some(spec)).await
    }

    /// The fault rules in force.
    pub async fn faults(&self) -> Value {
        self.send(Method::GET, "/_sim/faults", None).await
    }

    /// Removes every fault rule.
    pub async fn clear_faults(&self) {
        self.send(Method::DELETE, "/_sim/faults", None).await;
    }

    /// Finishes a held or running run now (`complete` / `success`).
    pub async fn finish_run(&self, run_id: &str) -> Value {
        let path = format!("/_sim/runs/{run_id}/finish");
        self.send(Method::POST, &path, None).await
    }

    /// Finishes every run that is not finished yet.
    pub async fn finish_all_runs(&self) {
        for run in self.runs().await {
            let status = run["status"].as_str().unwrap_or_default();
            if matches!(status, "in_progress" | "pending" | "running") {
                self.finish_run(run["id"].as_str().unwrap_or_default())
                    .await;
            }
        }
    }

    /// The bytes an upload stored (`GET /_sim/files/{id}`).
    pub async fn file_bytes(&self, file_id: &str) -> Vec<u8> {
        let url = format!("{}/_sim/files/{file_id}", self.origin);
        let response = self.http.get(&url).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response.bytes().await.unwrap().to_vec()
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.origin);
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
