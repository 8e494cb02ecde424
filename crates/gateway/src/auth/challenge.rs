//! The one place that builds `WWW-Authenticate` challenges and the 401/503 answers of the
//! auth layer. With OAuth on, `resource_metadata="…"` and `scope="…"` are added here, so
//! every 401 (GET, POST, DELETE, any bad or foreign token) carries them.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode};

/// What went wrong with the presented credential, as RFC 6750 §3.1 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    /// No credential at all: RFC 6750 says to send no error code.
    None,
    /// The header was malformed.
    InvalidRequest,
    /// The token was rejected.
    InvalidToken,
}

/// Builds challenges for this gateway.
#[derive(Debug, Clone, Default)]
pub struct Challenge {
    realm: Option<String>,
    /// RFC 9728 `resource_metadata` and the scope to ask for, when OAuth is on.
    oauth: Option<(String, String)>,
}

impl Challenge {
    pub fn new() -> Self {
        Self {
            realm: Some("layer-mcp-gateway".to_owned()),
            oauth: None,
        }
    }

    /// Challenges that send clients to the protected resource metadata (OAuth discovery).
    pub fn with_oauth(mut self, resource_metadata: String, scope: String) -> Self {
        self.oauth = Some((resource_metadata, scope));
        self
    }

    /// The `WWW-Authenticate` value.
    pub fn header(&self, error: ChallengeError, description: &str) -> HeaderValue {
        let mut params = Vec::new();
        if let Some(realm) = &self.realm {
            params.push(format!("realm=\"{}\"", quote(realm)));
        }
        if let Some((metadata, scope)) = &self.oauth {
            params.push(format!("resource_metadata=\"{}\"", quote(metadata)));
            params.push(format!("scope=\"{}\"", quote(scope)));
        }
        match error {
            ChallengeError::None => {}
            ChallengeError::InvalidRequest => params.push("error=\"invalid_request\"".to_owned()),
            ChallengeError::InvalidToken => params.push("error=\"invalid_token\"".to_owned()),
        }
        if error != ChallengeError::None && !description.is_empty() {
            params.push(format!("error_description=\"{}\"", quote(description)));
        }
        let value = if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        };
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }

    /// 401 with the challenge and a small JSON body saying what to do.
    pub fn unauthorized(&self, error: ChallengeError, description: &str) -> Response<Body> {
        let body = serde_json::json!({
            "error": match error {
                ChallengeError::None | ChallengeError::InvalidToken => "invalid_token",
                ChallengeError::InvalidRequest => "invalid_request",
            },
            "error_description": description,
        });
        json_response(
            StatusCode::UNAUTHORIZED,
            &body,
            Some(self.header(error, description)),
            None,
        )
    }

    /// 503 when the credential could not be checked: clients keep their token and retry.
    pub fn unavailable(&self, description: &str, retry_after: Duration) -> Response<Body> {
        let body = serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": description,
        });
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &body,
            None,
            Some(retry_after),
        )
    }
}

/// Quoted-string content: no quotes or backslashes, printable ASCII only.
fn quote(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
        .collect()
}

fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    challenge: Option<HeaderValue>,
    retry_after: Option<Duration>,
) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    if let Some(challenge) = challenge {
        headers.insert(http::header::WWW_AUTHENTICATE, challenge);
    }
    if let Some(after) = retry_after {
        headers.insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(after.as_secs().max(1)),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        let c = Challenge::new();
        assert_eq!(
            c.header(ChallengeError::None, "ignored"),
            "Bearer realm=\"layer-mcp-gateway\""
        );
        assert_eq!(
            c.header(ChallengeError::InvalidToken, "the \"token\" is bad"),
            "Bearer realm=\"layer-mcp-gateway\", error=\"invalid_token\", error_description=\"the token is bad\""
        );
        assert_eq!(
            Challenge::default().header(ChallengeError::None, ""),
            "Bearer"
        );
        let oauth = Challenge::new().with_oauth(
            "https://gw.example/.well-known/oauth-protected-resource/mcp".into(),
            "layer".into(),
        );
        assert_eq!(
            oauth.header(ChallengeError::InvalidToken, "expired"),
            "Bearer realm=\"layer-mcp-gateway\", resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/mcp\", \
             scope=\"layer\", error=\"invalid_token\", error_description=\"expired\""
        );
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let r = Challenge::new().unavailable("Layer is unreachable", Duration::from_secs(5));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[http::header::RETRY_AFTER], "5");
        assert!(r.headers().get(http::header::WWW_AUTHENTICATE).is_none());
    }
}
