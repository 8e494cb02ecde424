//! Authentication before any MCP handling: every GET, POST and DELETE on `/mcp` must carry a
//! bearer token that resolves to a [`Caller`], which goes into the request's extensions for
//! the tool handlers. No or malformed header, or a token Layer rejects: 401 with the
//! challenge. Layer unreachable: 503 with `Retry-After` (never 401, which would make clients
//! drop a working token).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::Method;

use super::challenge::{Challenge, ChallengeError};
use super::{AuthError, BearerError, PresentedToken, SharedAuthenticator};

/// State of the auth middleware.
#[derive(Clone)]
pub struct AuthState {
    pub authenticator: SharedAuthenticator,
    pub challenge: Arc<Challenge>,
}

pub async fn require_caller(
    State(state): State<AuthState>,
    mut request: Request,
    next: Next,
) -> Response {
    // CORS preflights carry no credentials by design; the CORS layer answers them.
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    // Anything below that prints the request's headers (a Debug of the parts) shows
    // "Sensitive" instead of the token.
    if let Some(value) = request.headers_mut().get_mut(http::header::AUTHORIZATION) {
        value.set_sensitive(true);
    }
    let token = match PresentedToken::from_headers(request.headers()) {
        Ok(token) => token,
        Err(error) => {
            let kind = match error {
                BearerError::Missing => ChallengeError::None,
                BearerError::Duplicate | BearerError::NotBearer | BearerError::Malformed => {
                    ChallengeError::InvalidRequest
                }
            };
            return state.challenge.unauthorized(kind, &error.to_string());
        }
    };
    match state.authenticator.authenticate(&token).await {
        Ok(caller) => {
            tracing::Span::current().record("user", tracing::field::display(caller.user()));
            tracing::debug!(user = %caller.user(), "authenticated");
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(AuthError::Rejected { reason }) => state
            .challenge
            .unauthorized(ChallengeError::InvalidToken, &reason),
        Err(AuthError::Unavailable {
            reason,
            retry_after,
        }) => state.challenge.unavailable(&reason, retry_after),
    }
}
