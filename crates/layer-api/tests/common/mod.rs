//! Starting a simulator in-process and reaching its admin API.

#![allow(dead_code)] // each test file uses a different part

use std::time::Duration;

use layer_api::{BearerToken, ClientConfig, LayerClient, PollOptions, RetryPolicy, WorkspaceId};
use layer_sim::{RunningSim, SimConfig};
use secrecy::ExposeSecret;
use serde_json::Value;
use test_support::sim::SimAdmin;

pub const ACME: &str = "acme-studio";
pub const ALICE_PERSONAL: &str = "alice-personal";
pub const BOB_SANDBOX: &str = "bob-sandbox";

pub async fn sim() -> RunningSim {
    layer_sim::start(SimConfig::for_tests()).await.unwrap()
}

/// A client with short timeouts and fast retries, so failure paths take milliseconds.
pub fn config(sim: &RunningSim) -> ClientConfig {
    let mut config = ClientConfig::with_base_url(sim.api_url().clone());
    config.user_agent = "layer-api-tests/0".into();
    config.request_timeout = Duration::from_secs(5);
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        max_retry_after: Duration::ZERO,
    };
    config
}

pub fn client(sim: &RunningSim) -> LayerClient {
    LayerClient::new(config(sim)).unwrap()
}

pub fn pat(sim: &RunningSim, login: &str) -> BearerToken {
    let secret = sim.fixtures().active_pat(login).unwrap();
    BearerToken::new(secret.expose_secret()).unwrap()
}

pub fn revoked_pat(sim: &RunningSim, login: &str) -> BearerToken {
    let secret = sim.fixtures().revoked_pat(login).unwrap();
    BearerToken::new(secret.expose_secret()).unwrap()
}

pub fn ws(sim: &RunningSim, slug: &str) -> WorkspaceId {
    WorkspaceId::from_uuid(sim.fixtures().workspace_id(slug).unwrap())
}

pub fn fast_poll() -> PollOptions {
    PollOptions {
        timeout: Duration::from_secs(20),
        max_interval: Duration::from_millis(25),
    }
}

/// The simulator's admin API (`/_sim/*`): `test-support`'s client, with the stricter
/// readings these tests want (a counter or workspace that is missing fails the test).
pub struct Admin {
    http: reqwest::Client,
    sim: SimAdmin,
}

impl Admin {
    pub fn new(sim: &RunningSim) -> Self {
        Self {
            http: reqwest::Client::new(),
            sim: SimAdmin::new(sim.base_url().as_str()),
        }
    }

    pub async fn state(&self) -> Value {
        self.sim.state().await
    }

    pub async fn counter(&self, name: &str) -> u64 {
        self.state().await["counters"][name].as_u64().unwrap()
    }

    pub async fn add_fault(&self, fault: Value) {
        self.sim.add_faults(fault).await;
    }

    pub async fn faults(&self) -> Value {
        self.sim.faults().await
    }

    pub async fn clear_faults(&self) {
        self.sim.clear_faults().await;
    }

    pub async fn finish_run(&self, id: &str) {
        self.sim.finish_run(id).await;
    }

    pub async fn file_bytes(&self, id: &str) -> Vec<u8> {
        self.sim.file_bytes(id).await
    }

    pub async fn get_bytes(&self, url: &str) -> (String, Vec<u8>) {
        let response = self.http.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (content_type, response.bytes().await.unwrap().to_vec())
    }

    /// The simulator's record of a workspace (balance, reserved, available).
    pub async fn workspace(&self, id: WorkspaceId) -> Value {
        let state = self.state().await;
        state["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["workspace_id"] == id.to_string())
            .cloned()
            .unwrap()
    }

    /// Runs the simulator recorded, in creation order.
    pub async fn runs(&self) -> Vec<Value> {
        self.state().await["runs"].as_array().unwrap().clone()
    }
}

/// What most tests start from: a simulator, its admin API, a client with the test
/// configuration, and alice's token.
pub async fn setup() -> (RunningSim, Admin, LayerClient, BearerToken) {
    setup_with(|_| {}).await
}

/// [`setup`], with the client's configuration changed by `adjust` first.
pub async fn setup_with(
    adjust: impl FnOnce(&mut ClientConfig),
) -> (RunningSim, Admin, LayerClient, BearerToken) {
    let sim = sim().await;
    let mut config = config(&sim);
    adjust(&mut config);
    let client = LayerClient::new(config).unwrap();
    let (admin, alice) = (Admin::new(&sim), pat(&sim, "alice"));
    (sim, admin, client, alice)
}
