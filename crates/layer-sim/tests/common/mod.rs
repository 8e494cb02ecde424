//! Shared test harness: a simulator on port 0 and a plain HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use layer_sim::{RunningSim, SimConfig};
use reqwest::{Client, Method, Response, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

pub const ACME: &str = "a0000000-0000-4000-8000-000000000001";
pub const ALICE_PERSONAL: &str = "a0000000-0000-4000-8000-000000000002";
pub const BOB_SANDBOX: &str = "a0000000-0000-4000-8000-000000000003";
pub const FLUX: &str = "b0000000-0000-4000-8000-000000000001";
pub const FLUX_FILL: &str = "b0000000-0000-4000-8000-000000000002";
pub const KLING: &str = "b0000000-0000-4000-8000-000000000005";
pub const MESHY: &str = "b0000000-0000-4000-8000-000000000008";
pub const TTS: &str = "b0000000-0000-4000-8000-00000000000a";
pub const ACME_STYLE: &str = "b0000000-0000-4000-8000-000000000101";
pub const PRODUCT_SHOT: &str = "c0000000-0000-4000-8000-000000000001";

pub struct Harness {
    pub sim: RunningSim,
    pub http: Client,
}

impl Harness {
    pub async fn start() -> Self {
        Self::with(SimConfig::for_tests()).await
    }

    pub async fn with(config: SimConfig) -> Self {
        let sim = layer_sim::start(config).await.expect("simulator starts");
        let http = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Self { sim, http }
    }

    pub fn pat(&self, login: &str) -> String {
        self.sim
            .fixtures()
            .active_pat(login)
            .expect("fixture PAT")
            .expose_secret()
            .to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.sim.base_url().as_str().trim_end_matches('/'),
            path
        )
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{}", self.sim.api_url(), path)
    }

    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.request(Method::GET, token, path).await
    }

    /// An API call with no body.
    pub async fn request(&self, method: Method, token: &str, path: &str) -> Response {
        let request = self.http.request(method, self.api(path)).bearer_auth(token);
        request.send().await.expect("request")
    }

    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let r = self.get(token, path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.expect("json")
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value, key: Option<&str>) -> Response {
        let mut req = self.http.post(self.api(path)).bearer_auth(token).json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.expect("POST")
    }

    pub async fn post_ok(&self, token: &str, path: &str, body: &Value) -> Value {
        let r = self.post(token, path, body, None).await;
        let status = r.status();
        let text = r.text().await.expect("body");
        assert_eq!(status, StatusCode::OK, "POST {path}: {text}");
        serde_json::from_str(&text).expect("json")
    }

    pub async fn state(&self) -> Value {
        self.http
            .get(self.url("/_sim/state"))
            .send()
            .await
            .expect("state")
            .json()
            .await
            .expect("state json")
    }

    pub async fn workspace(&self, token: &str, ws: &str) -> Value {
        self.get_json(token, &format!("/workspaces/{ws}")).await
    }

    pub async fn execute(&self, token: &str, ws: &str, body: Value) -> Value {
        self.post_ok(token, &format!("/workspaces/{ws}/inferences"), &body)
            .await
    }

    /// Polls an inference until it is no longer `in_progress` (at most 10 s).
    pub async fn wait_inference(&self, token: &str, ws: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let run = self
                .get_json(token, &format!("/workspaces/{ws}/inferences/{id}"))
                .await;
            if run["status"] != "in_progress" {
                return run;
            }
            assert!(Instant::now() < deadline, "run {id} did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_workflow_run(&self, token: &str, ws: &str, wf: &str, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let run = self
                .get_json(token, &format!("/workspaces/{ws}/workflows/{wf}/runs/{id}"))
                .await;
            if run["status"] != "pending" && run["status"] != "running" {
                return run;
            }
            assert!(Instant::now() < deadline, "run {id} did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A simulator started with one fault already in place.
    pub async fn with_fault(fault: Value) -> Harness {
        let h = Harness::start().await;
        h.add_fault(fault).await;
        h
    }

    pub async fn add_fault(&self, fault: Value) {
        let r = self
            .http
            .post(self.url("/_sim/faults"))
            .json(&fault)
            .send()
            .await
            .expect("fault");
        assert_eq!(r.status(), StatusCode::CREATED);
    }

    /// Uploads bytes through the whole GCS-style dance; returns the file id.
    pub async fn upload(
        &self,
        token: &str,
        ws: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> String {
        let grant = self
            .post_ok(
                token,
                &format!("/workspaces/{ws}/files/upload-url"),
                &json!({"content_type": content_type, "file_size_bytes": bytes.len(), "file_name": "f"}),
            )
            .await;
        let session = self
            .http
            .post(grant["upload_url"].as_str().expect("url"))
            .header("x-goog-resumable", "start")
            .header("content-type", content_type)
            .header("content-length", "0")
            .send()
            .await
            .expect("start");
        assert_eq!(session.status(), StatusCode::CREATED);
        let location = session.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let put = self
            .http
            .put(location)
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await
            .expect("put");
        assert_eq!(put.status(), StatusCode::OK);
        grant["file_id"].as_str().expect("file id").to_owned()
    }
}

/// The `type` of a problem body, last path segment.
pub fn code(problem: &Value) -> &str {
    problem["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("")
}

/// Plain, unauthenticated GETs of any URL: discovery documents, keys, pages, outputs.
impl Harness {
    pub async fn fetch(&self, url: impl reqwest::IntoUrl) -> Response {
        self.http.get(url).send().await.expect("GET")
    }

    /// A GET with a bearer token, outside the API (`/userinfo`).
    pub async fn fetch_json_as(&self, token: &str, url: impl reqwest::IntoUrl) -> Value {
        let response = self.http.get(url).bearer_auth(token).send().await;
        response.expect("GET").json().await.expect("json")
    }

    pub async fn fetch_json(&self, url: impl reqwest::IntoUrl) -> Value {
        self.fetch(url).await.json().await.expect("json")
    }

    pub async fn fetch_text(&self, url: impl reqwest::IntoUrl) -> String {
        self.fetch(url).await.text().await.expect("text")
    }

    pub async fn fetch_bytes(&self, url: impl reqwest::IntoUrl) -> Vec<u8> {
        self.fetch(url).await.bytes().await.expect("bytes").to_vec()
    }
}

/// Asserts that `r` is a problem answer with this status and problem `type`.
pub async fn assert_problem(r: Response, status: StatusCode, problem: &str) {
    assert_eq!(r.status(), status);
    assert_eq!(code(&r.json().await.expect("problem json")), problem);
}
