//! Who is calling: a Personal Access Token, or an access token issued by the simulated IdP.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::header::AUTHORIZATION;
use http::request::Parts;
use serde_json::Value;

use crate::problem::ApiError;
use crate::state::{Sim, UserIdx};

/// The authenticated user of an API request.
#[derive(Clone, Copy, Debug)]
pub struct Caller(pub UserIdx);

impl FromRequestParts<Arc<Sim>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, sim: &Arc<Sim>) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Err(ApiError::Unauthenticated { token_sent: false });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(bearer)
            .ok_or(ApiError::Unauthenticated { token_sent: true })?;
        resolve_token(sim, token)
            .map(Caller)
            .ok_or(ApiError::Unauthenticated { token_sent: true })
    }
}

/// The token of a `Bearer` authorization header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The user a PAT or IdP access token stands for; `None` for unknown, revoked, expired,
/// foreign-audience or badly signed tokens.
pub fn resolve_token(sim: &Sim, token: &str) -> Option<UserIdx> {
    if let Some((user, revoked)) = sim.pats.get(token) {
        return (!revoked).then_some(*user);
    }
    let claims = sim.keys.verify(token).ok()?;
    access_token_user(sim, &claims, &sim.fixtures.api_audience)
}

/// Checks the claims of a verified JWT as an access token for `audience`.
pub fn access_token_user(sim: &Sim, claims: &Value, audience: &str) -> Option<UserIdx> {
    if claims["iss"] != sim.issuer().as_str() {
        return None;
    }
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == audience,
        Value::Array(list) => list.iter().any(|a| a == audience),
        _ => false,
    };
    let exp = claims["exp"].as_i64()?;
    if !aud_ok || exp <= chrono::Utc::now().timestamp() {
        return None;
    }
    let sub = claims["sub"].as_str()?;
    sim.fixtures
        .users
        .iter()
        .position(|u| u.subject == sub)
        .map(UserIdx)
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn parses_bearer() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
