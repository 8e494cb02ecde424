//! Notices a client that went away in the middle of a POST on `/mcp`.
//!
//! rmcp does not: in a 2025-xx session a request's answer is a stream the client may resume
//! (`Last-Event-ID`), so dropping the HTTP connection leaves the handler running. That is
//! right for a call already talking to Layer, but a call still *waiting* for a place in the
//! per-user queue of calls in flight must leave it at once, or it holds back the calls
//! behind it. So this layer, innermost, puts a [`ConnectionGone`] token into the request's
//! extensions (rmcp hands them to the tool handler with the request's
//! `http::request::Parts`) and cancels it when the response is dropped before its end: the
//! connection closed (hyper drops the body), or the request future itself was dropped.
//! After a normal end the token fires too, harmlessly: the handler is done by then.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http::Method;
use rmcp::service::{RequestContext, RoleServer};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Cancelled once the HTTP exchange that carried a request is over (normally or not).
#[derive(Debug, Clone, Default)]
pub struct ConnectionGone(CancellationToken);

impl ConnectionGone {
    /// The token of the request being handled, if it came through this layer.
    pub fn of(context: &RequestContext<RoleServer>) -> Option<ConnectionGone> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ConnectionGone>())
            .cloned()
    }

    pub fn token(&self) -> &CancellationToken {
        &self.0
    }
}

pub async fn watch(mut request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let gone = ConnectionGone::default();
    request.extensions_mut().insert(gone.clone());
    // Held by this future until the response exists, then by the response body.
    let guard = gone.0.clone().drop_guard();
    let response = next.run(request).await;
    if !is_event_stream(&response) {
        // A plain answer: whatever handled the request is done.
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = Body::from_stream(GuardedStream {
        inner: body.into_data_stream(),
        _guard: guard,
    });
    Response::from_parts(parts, body)
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// A body stream that cancels its token when dropped.
struct GuardedStream<S> {
    inner: S,
    _guard: DropGuard,
}

impl<S: futures::Stream + Unpin> futures::Stream for GuardedStream<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}
