//! How a tool call learns that its client no longer wants the answer.
//!
//! Two signals: rmcp's request token, cancelled by `notifications/cancelled` (and, for
//! sessionless requests, by a dropped connection); and [`ConnectionGone`], our own signal
//! that the HTTP exchange carrying a session request ended (see `http::disconnect`).
//! A call waiting for a place gives up on either; a call already talking to Layer finishes
//! (a resumed stream may still want its answer, and a run being started must be counted).

use rmcp::service::{RequestContext, RoleServer};
use tokio_util::sync::CancellationToken;

use crate::http::disconnect::ConnectionGone;

#[derive(Debug, Clone, Default)]
pub struct Cancellation {
    request: CancellationToken,
    connection: Option<ConnectionGone>,
}

impl Cancellation {
    /// The signals of the request being handled.
    pub fn of(context: &RequestContext<RoleServer>) -> Cancellation {
        Cancellation {
            request: context.ct.clone(),
            connection: ConnectionGone::of(context),
        }
    }

    /// A cancellation that never fires (tests, internal calls).
    pub fn never() -> Cancellation {
        Cancellation::default()
    }

    /// Resolves when the client cancelled the request explicitly.
    pub async fn requested(&self) {
        self.request.cancelled().await
    }

    /// Resolves when the client cancelled the request or went away.
    pub async fn any(&self) {
        match &self.connection {
            Some(gone) => {
                tokio::select! {
                    _ = self.request.cancelled() => {}
                    _ = gone.token().cancelled() => {}
                }
            }
            None => self.request.cancelled().await,
        }
    }
}
