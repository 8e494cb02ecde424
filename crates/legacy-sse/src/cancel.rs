//! Makes a session's end reach the handler's work.
//!
//! rmcp runs each request handler in its own task and only *signals* cancellation through
//! `RequestContext::ct`; a handler that never looks at it keeps running after its session is
//! gone, holding whatever it holds (a limiter place, an upstream call). [`Cancellable`] wraps
//! the handler so that a cancelled request's future is dropped, which releases all of that,
//! and counts requests in flight so a shutdown can wait for them.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{ClientNotification, ClientRequest, ErrorCode, ProtocolVersion, ServerResult};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, Service, ServiceRole};
use tokio::sync::watch;

/// Requests being handled in one session.
#[derive(Clone)]
pub(crate) struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    pub(crate) fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    fn enter(&self) -> InFlightGuard {
        self.0.send_modify(|n| *n += 1);
        InFlightGuard(self.0.clone())
    }

    /// Resolves once no request is being handled.
    pub(crate) async fn idle(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

struct InFlightGuard(Arc<watch::Sender<usize>>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A handler whose requests stop (their futures are dropped) when cancelled: by the client
/// (`notifications/cancelled`) or because the session ended.
pub(crate) struct Cancellable<S> {
    inner: S,
    in_flight: InFlight,
}

impl<S> Cancellable<S> {
    pub(crate) fn new(inner: S, in_flight: InFlight) -> Self {
        Self { inner, in_flight }
    }
}

impl<S: Service<RoleServer>> Service<RoleServer> for Cancellable<S> {
    async fn handle_request(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let _counted = self.in_flight.enter();
        let cancelled = context.ct.clone();
        tokio::select! {
            result = self.inner.handle_request(request, context) => result,
            () = cancelled.cancelled() => Err(ErrorData::new(
                ErrorCode::INTERNAL_ERROR,
                "request cancelled: the session ended or the client cancelled it",
                None,
            )),
        }
    }

    async fn handle_notification(
        &self,
        notification: ClientNotification,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.handle_notification(notification, context).await
    }

    fn get_info(&self) -> <RoleServer as ServiceRole>::Info {
        self.inner.get_info()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }
}
