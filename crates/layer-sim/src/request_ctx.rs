//! The request id and path of the request being served, for error bodies built deep inside.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;

#[derive(Clone, Debug)]
pub struct RequestCtx {
    pub request_id: String,
    pub path: String,
}

tokio::task_local! {
    static CURRENT: RequestCtx;
}

/// The current request's context; outside a request (unit tests) a placeholder.
pub fn current() -> RequestCtx {
    CURRENT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| RequestCtx {
            request_id: "req_none".into(),
            path: String::new(),
        })
}

/// Gives every request an id, serves it inside that context, and stamps `X-Request-Id` on the
/// response whatever produced it.
pub async fn layer(req: Request, next: Next) -> Response {
    let ctx = RequestCtx {
        request_id: format!("req_{}", uuid::Uuid::new_v4().simple()),
        path: req.uri().path().to_owned(),
    };
    let id = ctx.request_id.clone();
    let mut response = CURRENT.scope(ctx, next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
