//! Fault injection for tests: rules set through `/_sim/faults` add latency, answer 5xx, drop
//! the connection or stall, for requests matching a path prefix and method.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::conn::ConnHandle;
use crate::problem::ApiError;
use crate::state::Sim;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Wait `latency_ms` before handling.
    Latency,
    /// Answer `status` (default 503) as a problem instead of handling.
    Error,
    /// Cut the connection: `before` the handler runs, or `after` it (the work is done, the
    /// answer is lost).
    Drop,
    /// Hold the answer for `stall_ms` (default: until shutdown), `before` or `after` handling.
    Stall,
    /// Answer an HTML page with `status` (default 200) instead of handling, as a captive
    /// proxy or a misrouted load balancer would.
    Html,
    /// Handle normally, then add `Deprecation` (RFC 9745) and `Sunset` (RFC 8594) headers.
    Deprecation,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    Before,
    After,
}

fn one() -> f64 {
    1.0
}

/// One rule, as posted to `/_sim/faults`. Optional fields may be left out.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub id: Option<u64>,
    pub kind: FaultKind,
    /// Only requests whose path starts with this.
    pub path_prefix: Option<String>,
    /// Only requests with this method.
    pub method: Option<String>,
    /// Fraction of matching requests affected, spread evenly (0.5: every second one).
    #[serde(default = "one")]
    pub probability: f64,
    /// Affect at most this many requests, then stop.
    pub count: Option<u64>,
    pub latency_ms: Option<u64>,
    pub status: Option<u16>,
    #[serde(default)]
    pub when: When,
    pub stall_ms: Option<u64>,
    /// Requests this rule matched (read-only).
    #[serde(default)]
    pub matched: u64,
    /// Requests this rule affected (read-only).
    #[serde(default)]
    pub applied: u64,
}

impl FaultSpec {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err("probability must be between 0 and 1".into());
        }
        match (self.kind, self.status) {
            (FaultKind::Error, Some(s)) if !(500..=599).contains(&s) => {
                return Err("an error fault's status must be a 5xx code".into());
            }
            (_, Some(s)) if !(200..=599).contains(&s) => {
                return Err("status must be between 200 and 599".into());
            }
            _ => {}
        }
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err("a latency fault needs latency_ms".into());
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|p| path.starts_with(p))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<(u64, Vec<FaultSpec>)>,
}

/// What to do to one request.
#[derive(Debug, Default)]
struct Plan {
    latency: Duration,
    deprecation: bool,
    terminal: Terminal,
}

impl Faults {
    pub fn list(&self) -> Vec<FaultSpec> {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    pub fn add(&self, mut spec: FaultSpec) -> FaultSpec {
        let mut guard = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        guard.0 += 1;
        spec.id = Some(guard.0);
        spec.matched = 0;
        spec.applied = 0;
        guard.1.push(spec.clone());
        spec
    }

    pub fn clear(&self) {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clear();
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut guard = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let before = guard.1.len();
        guard.1.retain(|r| r.id != Some(id));
        guard.1.len() != before
    }

    fn plan(&self, method: &str, path: &str) -> Plan {
        let mut guard = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let mut plan = Plan::default();
        for rule in guard.1.iter_mut() {
            if !rule.matches(method, path) {
                continue;
            }
            if rule.count.is_some_and(|c| rule.applied >= c) {
                continue;
            }
            rule.matched += 1;
            // Deterministic spreading: fire when the running share crosses an integer.
            let p = rule.probability;
            let fires =
                ((rule.matched as f64) * p).floor() > (((rule.matched - 1) as f64) * p).floor();
            if !fires {
                continue;
            }
            rule.applied += 1;
            match rule.kind {
                FaultKind::Latency => {
                    plan.latency += Duration::from_millis(rule.latency_ms.unwrap_or(0));
                }
                FaultKind::Deprecation => plan.deprecation = true,
                kind => {
                    if plan.terminal.is_none() {
                        plan.terminal = Some((kind, rule.when, rule.status, rule.stall_ms));
                    }
                }
            }
        }
        plan
    }
}

async fn stall(sim: &Sim, ms: Option<u64>) {
    match ms {
        Some(ms) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = sim.shutdown.cancelled() => {}
            }
        }
        None => sim.shutdown.cancelled().await,
    }
}

/// The middleware. Admin paths are never faulted, so a test can always clear its faults.
pub async fn layer(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_sim") {
        return next.run(req).await;
    }
    let plan = sim.faults.plan(req.method().as_str(), &path);
    if plan.latency.is_zero() && plan.terminal.is_none() && !plan.deprecation {
        return next.run(req).await;
    }
    let mut response = faulted(&sim, plan.latency, plan.terminal, req, next).await;
    if plan.deprecation {
        let h = response.headers_mut();
        // Fixed dates keep the headers the same in every run.
        h.insert("deprecation", HeaderValue::from_static("@1767225600"));
        h.insert(
            "sunset",
            HeaderValue::from_static("Fri, 01 Jan 2027 00:00:00 GMT"),
        );
    }
    response
}

type Terminal = Option<(FaultKind, When, Option<u16>, Option<u64>)>;

async fn faulted(
    sim: &Arc<Sim>,
    latency: Duration,
    terminal: Terminal,
    req: Request,
    next: Next,
) -> Response {
    sim.lock().counters.faults_applied += 1;
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| c.0.clone());
    if !latency.is_zero() {
        stall(sim, Some(latency.as_millis() as u64)).await;
    }
    let Some((kind, when, status, stall_ms)) = terminal else {
        return next.run(req).await;
    };
    match (kind, when) {
        (FaultKind::Error, _) => {
            let status = status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            ApiError::Injected { status }.into_response()
        }
        (FaultKind::Drop, When::Before) => {
            if let Some(conn) = conn {
                conn.kill();
            }
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        (FaultKind::Drop, When::After) => {
            let response = next.run(req).await;
            if let Some(conn) = conn {
                conn.kill();
            }
            response
        }
        (FaultKind::Stall, When::Before) => {
            stall(sim, stall_ms).await;
            next.run(req).await
        }
        (FaultKind::Stall, When::After) => {
            let response = next.run(req).await;
            stall(sim, stall_ms).await;
            response
        }
        (FaultKind::Html, _) => {
            let status = status
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<!doctype html><html><head><title>Gateway</title></head><body><h1>Please sign in to the network</h1></body></html>",
            )
                .into_response()
        }
        (FaultKind::Latency | FaultKind::Deprecation, _) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FaultKind, probability: f64) -> FaultSpec {
        FaultSpec {
            id: None,
            kind,
            path_prefix: Some("/api".into()),
            method: None,
            probability,
            count: None,
            latency_ms: None,
            status: None,
            when: When::Before,
            stall_ms: None,
            matched: 0,
            applied: 0,
        }
    }

    #[test]
    fn half_probability_hits_every_second_request() {
        let faults = Faults::default();
        faults.add(spec(FaultKind::Error, 0.5));
        let hits: Vec<bool> = (0..6)
            .map(|_| faults.plan("GET", "/api/v1/workspaces").terminal.is_some())
            .collect();
        assert_eq!(hits.iter().filter(|h| **h).count(), 3);
        assert!(faults.plan("GET", "/other").terminal.is_none());
    }

    #[test]
    fn count_limits_applications() {
        let faults = Faults::default();
        let mut s = spec(FaultKind::Drop, 1.0);
        s.count = Some(1);
        faults.add(s);
        assert!(faults.plan("POST", "/api/x").terminal.is_some());
        assert!(faults.plan("POST", "/api/x").terminal.is_none());
    }
}
