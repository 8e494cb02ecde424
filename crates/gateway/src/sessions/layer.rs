//! Binds each MCP session to the user who opened it. A request naming a session that is
//! unknown, expired, or another user's gets the same 404 rmcp gives an unknown session, so
//! nothing reveals that someone else's session exists; the client re-initializes. Opening a
//! session beyond the per-user cap closes that user's least recently used one.
//!
//! When the registry's store (the shared Redis) cannot be asked, a request naming a session
//! gets 503 with a JSON-RPC error saying so, never 404 (which would make the client drop a
//! session that still exists) and never a pass (which would skip the owner check).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, Method, StatusCode};

use super::{Ownership, SessionKey, SessionRegistry, StoreUnavailable};
use crate::auth::Caller;
use crate::http::{jsonrpc_error, text_error};

pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Closes a session in the MCP transport (rmcp's session manager).
#[async_trait::async_trait]
pub trait SessionCloser: Send + Sync + 'static {
    async fn close(&self, session: &SessionKey);
}

#[async_trait::async_trait]
impl SessionCloser
    for rmcp::transport::streamable_http_server::session::local::LocalSessionManager
{
    async fn close(&self, session: &SessionKey) {
        use rmcp::transport::streamable_http_server::session::SessionManager;
        if let Err(error) = self.close_session(session).await {
            tracing::warn!(%error, "closing an evicted session failed");
        }
    }
}

/// State of the session middleware.
#[derive(Clone)]
pub struct SessionState {
    pub registry: Arc<dyn SessionRegistry>,
    pub closer: Arc<dyn SessionCloser>,
}

fn not_found() -> Response {
    text_error(StatusCode::NOT_FOUND, "Not Found: Session not found")
}

/// JSON-RPC code of "the session store is unavailable" (server-defined range).
pub const SESSION_STORE_UNAVAILABLE: i64 = -32003;

/// 503: the session can be neither confirmed nor refused right now; retry.
fn store_unavailable(error: &StoreUnavailable) -> Response {
    tracing::warn!(%error, "session store unavailable: refusing a session request");
    let mut response = jsonrpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        SESSION_STORE_UNAVAILABLE,
        "The session store is unavailable, so this session cannot be checked right now. \
         The session is not lost: retry in a few seconds.",
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("2"),
    );
    response
}

/// Whether a request is a POST in a stateless revision (2026-07-28 or later, by its
/// `MCP-Protocol-Version` header). Those revisions have no sessions.
fn is_stateless(request: &Request) -> bool {
    request.method() == Method::POST
        && request
            .headers()
            .get(&crate::http::protocol::PROTOCOL_VERSION)
            .and_then(|v| v.to_str().ok())
            // ISO dates compare as text.
            .is_some_and(|v| v >= crate::http::protocol::STATELESS_REVISION)
}

pub async fn bind_sessions(
    State(state): State<SessionState>,
    mut request: Request,
    next: Next,
) -> Response {
    // A stateless revision has no sessions, so a leftover `Mcp-Session-Id` (a client that
    // kept one from an older revision) is ignored, as the spec says, rather than checked:
    // removed here, nothing after this layer can act on it.
    if is_stateless(&request) && request.headers_mut().remove(&SESSION_ID).is_some() {
        tracing::debug!("ignored an Mcp-Session-Id on a stateless request");
    }
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        // The auth layer runs first; reaching here without a caller is a wiring bug.
        tracing::error!("session layer reached without an authenticated caller");
        return text_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let presented: Option<SessionKey> = match request.headers().get(&SESSION_ID) {
        Some(value) => match value.to_str() {
            Ok(id) => Some(id.into()),
            Err(_) => {
                return text_error(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: invalid Mcp-Session-Id",
                );
            }
        },
        None => None,
    };
    let is_delete = request.method() == Method::DELETE;

    if let Some(session) = &presented {
        match state.registry.owner(session).await {
            Ok(Ownership::Owner(user)) if &user == caller.user() => {}
            Ok(Ownership::Owner(_)) => {
                tracing::warn!(user = %caller.user(), "refused another user's session");
                return not_found();
            }
            Ok(Ownership::Unknown) => return not_found(),
            Err(error) => return store_unavailable(&error),
        }
    }

    let mut response = next.run(request).await;
    // rmcp answers a successful DELETE with 202; clients (the Python SDK) and the reference
    // server expect 200.
    if is_delete && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::OK;
    }

    match &presented {
        Some(_) if response.status() == StatusCode::INTERNAL_SERVER_ERROR => {
            // rmcp could not restore the session from the store (Redis went away after the
            // owner check): say so as the same retryable 503.
            if let Err(error) = state.registry.check().await {
                return store_unavailable(&error);
            }
        }
        Some(session) => {
            if response.status() == StatusCode::NOT_FOUND
                || (is_delete && response.status().is_success())
            {
                state.registry.remove(session).await;
            }
        }
        None => {
            let issued = response
                .headers()
                .get(&SESSION_ID)
                .and_then(|v| v.to_str().ok())
                .map(SessionKey::from);
            if let Some(session) = issued.filter(|_| response.status().is_success()) {
                match state.registry.bind(session.clone(), caller.user()).await {
                    Ok(evicted) => {
                        for evicted in evicted {
                            tracing::info!(user = %caller.user(), "session cap reached: closing the least recently used session");
                            state.closer.close(&evicted).await;
                        }
                    }
                    Err(error) => {
                        // A session no replica could check must not exist: close it here.
                        state.closer.close(&session).await;
                        return store_unavailable(&error);
                    }
                }
            }
        }
    }
    response
}

/// Closes sessions idle for longer than the timeout, every `period`, until the token is
/// cancelled.
pub fn spawn_idle_sweeper(
    state: SessionState,
    period: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    for session in state.registry.expire_idle().await {
                        state.closer.close(&session).await;
                    }
                }
            }
        }
    })
}
