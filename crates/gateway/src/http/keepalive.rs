//! Keeps a connection reusable after a refusal sent before the request body was read.
//!
//! The guard (403), authentication (401, 503) and session binding (404, 503) answer from the
//! headers alone. hyper then drops the unread body and closes the connection, without
//! `Connection: close`: a client that pooled the connection (MCP clients re-initialize on it
//! right after a 404) loses its next request. So this layer, outermost, lends the body to
//! the layers inside and, when the answer comes back with the body unread, reads it to its
//! end if it is small and arrives soon; otherwise the answer says `Connection: close`.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// The most an unread body may hold to be read for the connection's sake.
const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long to wait for it: a client sends its body right after its headers.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The request body, shared between the request and this layer.
struct Lent(Arc<Mutex<Body>>);

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}

pub(crate) async fn drain_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.is_end_stream() {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let shared = Arc::new(Mutex::new(body));
    let request = Request::from_parts(parts, Body::new(Lent(shared.clone())));
    let mut response = next.run(request).await;
    // Still held inside (a stream reading it): not a refusal from the headers.
    let Ok(body) = Arc::try_unwrap(shared) else {
        return response;
    };
    let body = body.into_inner().unwrap_or_else(PoisonError::into_inner);
    if body.is_end_stream() {
        return response;
    }
    if declared.is_some_and(|len| len <= DRAIN_LIMIT) && drained(body).await {
        return response;
    }
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads `body` to its end within the limit and the time; whether it got there.
async fn drained(mut body: Body) -> bool {
    let read = async {
        let mut seen: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return false;
            };
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > DRAIN_LIMIT {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read)
        .await
        .unwrap_or(false)
}
