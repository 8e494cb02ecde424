//! On shutdown, a standalone SSE stream (`GET /mcp` with a session) ends at once instead of
//! holding the drain open: its client reconnects, through the load balancer, to another
//! replica and resumes with `Last-Event-ID` (the events are in the shared event store).
//! Answers to POSTs are left alone: calls in flight finish within the drain time.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use http::Method;
use tokio_util::sync::CancellationToken;

pub async fn end_streams_on_shutdown(
    State(shutdown): State<CancellationToken>,
    request: Request,
    next: Next,
) -> Response {
    let is_get = request.method() == Method::GET;
    let response = next.run(request).await;
    let is_stream = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_get || !is_stream {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = body
        .into_data_stream()
        .take_until(shutdown.cancelled_owned());
    Response::from_parts(parts, Body::from_stream(body))
}
