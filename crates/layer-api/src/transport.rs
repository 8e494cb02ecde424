//! Sending one API call: headers, timeouts, retries, deprecation notices, error decoding.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::RetryPolicy;
use crate::credentials::{BearerToken, IdempotencyKey};
use crate::error::{ApiError, Error, Result};

/// Header carrying the idempotency key (the IETF draft's spelling, which Layer uses).
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// One call, ready to send as often as the retry policy allows.
pub(crate) struct Call {
    pub method: Method,
    /// Route template, e.g. `POST /workspaces/{workspace_id}/inferences`: used in errors,
    /// logs and deprecation notices instead of the concrete URL.
    pub endpoint: &'static str,
    pub url: Url,
    pub body: Option<Bytes>,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Whether repeating the call cannot do anything twice: `GET`s, estimates, and every
    /// call carrying an idempotency key.
    pub repeatable: bool,
}

/// A whole answer with a success status.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub(crate) fn decode<T: DeserializeOwned>(self, endpoint: &'static str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|err| {
            let content_type = self
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("no content type");
            Error::InvalidResponse {
                endpoint,
                status: self.status,
                request_id: self
                    .headers
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                reason: format!("{err} ({content_type}, {} bytes)", self.body.len()),
            }
        })
    }
}

/// Remembers which endpoints were reported deprecated, so each is warned about once.
#[derive(Default)]
pub(crate) struct DeprecationLog {
    seen: Mutex<HashSet<&'static str>>,
}

impl DeprecationLog {
    pub(crate) fn observe(&self, endpoint: &'static str, headers: &HeaderMap) {
        let Some(deprecation) = headers.get("deprecation") else {
            return;
        };
        let first_time = match self.seen.lock() {
            Ok(mut seen) => seen.insert(endpoint),
            // A panic elsewhere while holding the lock: keep warning rather than panic here.
            Err(poisoned) => poisoned.into_inner().insert(endpoint),
        };
        if first_time {
            let sunset = headers
                .get("sunset")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("not announced");
            tracing::warn!(
                endpoint,
                deprecation = deprecation.to_str().unwrap_or("?"),
                sunset,
                "the Layer API reports this endpoint as deprecated"
            );
        }
    }

    pub(crate) fn seen(&self) -> Vec<&'static str> {
        let mut seen: Vec<_> = match self.seen.lock() {
            Ok(seen) => seen.iter().copied().collect(),
            Err(poisoned) => poisoned.into_inner().iter().copied().collect(),
        };
        seen.sort_unstable();
        seen
    }
}

pub(crate) struct Transport<'a> {
    pub http: &'a reqwest::Client,
    pub retry: &'a RetryPolicy,
    pub request_timeout: Duration,
    pub deprecations: &'a DeprecationLog,
}

impl Transport<'_> {
    /// Sends `call`, retrying what is safe to retry, and returns the successful answer.
    pub(crate) async fn send(&self, token: &BearerToken, call: &Call) -> Result<Answer> {
        let max_attempts = if call.repeatable {
            self.retry.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt = 1;
        loop {
            let started = Instant::now();
            let outcome = self.attempt(token, call).await;
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match outcome {
                Ok(answer) => {
                    tracing::debug!(
                        endpoint = call.endpoint,
                        status = answer.status.as_u16(),
                        attempt,
                        elapsed_ms,
                        "layer api call"
                    );
                    return Ok(answer);
                }
                Err(error) => {
                    let delay = if attempt < max_attempts {
                        retry_delay(self.retry, &error, attempt)
                    } else {
                        None
                    };
                    let Some(delay) = delay else {
                        tracing::debug!(
                            endpoint = call.endpoint,
                            attempt,
                            elapsed_ms,
                            status = error.status().map(|s| s.as_u16()),
                            request_id = error.request_id(),
                            error = %error,
                            "layer api call failed"
                        );
                        return Err(error);
                    };
                    tracing::info!(
                        endpoint = call.endpoint,
                        attempt,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %error,
                        "retrying layer api call"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, token: &BearerToken, call: &Call) -> Result<Answer> {
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .timeout(self.request_timeout)
            .header(header::AUTHORIZATION, token.header_value())
            .header(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = &call.idempotency_key {
            // Keys are checked to be visible ASCII, always a valid header value.
            if let Ok(value) = HeaderValue::from_str(key.as_str()) {
                request = request.header(IDEMPOTENCY_KEY, value);
            }
        }
        if let Some(body) = &call.body {
            request = request
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(body.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::transport(call.endpoint, e))?;
        let status = response.status();
        let headers = response.headers().clone();
        self.deprecations.observe(call.endpoint, &headers);
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::transport(call.endpoint, e))?;
        if status.is_success() {
            Ok(Answer {
                status,
                headers,
                body,
            })
        } else {
            Err(ApiError::from_response(call.endpoint, status, &headers, &body).into())
        }
    }
}

/// How long to wait before trying again after `error`, or `None` to give up.
///
/// Retried: connection failures, timeouts, broken connections, 502/503/504, and a 429 whose
/// `Retry-After` is within the policy's cap. A server-sent `Retry-After` replaces the computed
/// backoff; one beyond the cap means "not now", so the caller gets the error at once.
pub(crate) fn retry_delay(policy: &RetryPolicy, error: &Error, attempt: u32) -> Option<Duration> {
    match error {
        Error::Timeout { .. } | Error::Connect { .. } | Error::ConnectionLost { .. } => {
            Some(policy.backoff(attempt))
        }
        Error::Api(api) => match (api.status().as_u16(), api.retry_after()) {
            (429, Some(after)) if after <= policy.max_retry_after => Some(after),
            (502..=504, Some(after)) if after <= policy.max_retry_after => Some(after),
            (502..=504, None) => Some(policy.backoff(attempt)),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, retry_after: Option<&str>) -> Error {
        let mut headers = HeaderMap::new();
        if let Some(after) = retry_after {
            headers.insert("retry-after", HeaderValue::from_str(after).unwrap());
        }
        ApiError::from_response(
            "GET /x",
            StatusCode::from_u16(status).unwrap(),
            &headers,
            b"",
        )
        .into()
    }

    #[test]
    fn retries_only_what_the_policy_allows() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            max_retry_after: Duration::from_secs(2),
        };
        assert!(retry_delay(&policy, &api(503, None), 1).is_some());
        assert!(retry_delay(&policy, &api(502, None), 1).is_some());
        assert!(retry_delay(&policy, &api(504, None), 1).is_some());
        assert_eq!(
            retry_delay(&policy, &api(503, Some("1")), 1),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_delay(&policy, &api(503, Some("30")), 1), None);
        assert_eq!(
            retry_delay(&policy, &api(429, Some("2")), 1),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_delay(&policy, &api(429, Some("3")), 1), None);
        assert_eq!(retry_delay(&policy, &api(429, None), 1), None);
        for status in [400, 401, 402, 403, 404, 409, 422, 500] {
            assert_eq!(
                retry_delay(&policy, &api(status, None), 1),
                None,
                "{status}"
            );
        }
        let timeout = Error::Timeout { endpoint: "GET /x" };
        assert!(retry_delay(&policy, &timeout, 1).is_some());
    }

    #[test]
    fn deprecation_is_logged_once_per_endpoint() {
        let log = DeprecationLog::default();
        let mut headers = HeaderMap::new();
        log.observe("GET /a", &headers);
        assert!(log.seen().is_empty());
        headers.insert("deprecation", HeaderValue::from_static("true"));
        log.observe("GET /a", &headers);
        log.observe("GET /a", &headers);
        log.observe("GET /b", &headers);
        assert_eq!(log.seen(), vec!["GET /a", "GET /b"]);
    }
}
