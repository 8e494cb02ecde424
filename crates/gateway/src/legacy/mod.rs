//! The older HTTP+SSE transport (MCP 2024-11-05) on the same tool service as `/mcp`, for
//! clients that speak only that: Claude Code's `--transport sse`, Gemini CLI's `url`
//! entries, mcp-remote's `sse-only`, older Cursor and Windsurf builds.
//!
//! - `GET /mcp` without `Mcp-Session-Id` that accepts `text/event-stream`, and `GET /sse`,
//!   open a stream whose `endpoint` event names `/messages?sessionId=…`;
//! - `POST /messages?sessionId=…` delivers to it (202; replies on the stream);
//! - a POST on `/mcp` is always streamable HTTP, so clients that try POST first and fall
//!   back on 4xx find the right transport.
//!
//! The same layers are in front (Host / Origin guard and CORS, then authentication: 401
//! with the challenge on the GET and on every POST), the handler is the same [`LayerMcp`],
//! and a stream belongs to the user who opened it: another user's `sessionId` is the same
//! 404 as an unknown one. The transport itself is the `legacy-sse` crate. With `redis_url`
//! set, a POST may land on any replica: [`directory`] delivers it to the one holding the
//! stream.

pub(crate) mod directory;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{Method, header};
use legacy_sse::{IdentityKey, LegacySse, SessionDirectory};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::config::Config;
use crate::mcp::{LayerMcp, Shared};
use crate::sessions::layer::SESSION_ID;

/// The old transport serving the gateway's handler.
pub type OldSse = LegacySse<LayerMcp>;

/// Where the stream's `endpoint` event sends POSTs (the public URL is an origin, so no
/// prefix).
pub const MESSAGES_PATH: &str = "/messages";
/// The alias of `GET /mcp` for the old transport.
pub const SSE_PATH: &str = "/sse";

/// Builds the old transport. `shutdown` drains and closes its streams; `directory` finds
/// sessions (this process's, or every replica's: [`directory`]).
pub fn build(
    config: &Config,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    directory: Arc<dyn SessionDirectory>,
) -> Result<OldSse, legacy_sse::ConfigError> {
    let settings = legacy_sse::Config {
        messages_path: MESSAGES_PATH.to_owned(),
        keep_alive: config.sse_keep_alive,
        max_streams_per_identity: config.legacy_sse_streams_per_user,
        max_sessions: config.legacy_sse_max_streams,
        max_body_bytes: config.max_request_body_bytes,
        shutdown_drain: config.shutdown_drain,
        ..legacy_sse::Config::default()
    };
    LegacySse::builder(move || Ok(LayerMcp::new(shared.clone())))
        .config(settings)
        .shutdown(shutdown)
        .directory(directory)
        .identity(identity)
        .build()
}

/// A stream belongs to the authenticated user (the auth layer put the [`Caller`] there).
fn identity(parts: &http::request::Parts) -> Option<IdentityKey> {
    parts
        .extensions
        .get::<Caller>()
        .map(|caller| IdentityKey::new(caller.user().as_str()))
}

/// Whether a request on `/mcp` opens an old-style stream: a GET without a session (the
/// streamable transport's GET always names one) that accepts an event stream.
pub fn wants_old_stream(request: &Request) -> bool {
    request.method() == Method::GET
        && !request.headers().contains_key(&SESSION_ID)
        && request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| {
                let media = item.split(';').next().unwrap_or("").trim();
                media.eq_ignore_ascii_case("text/event-stream")
            })
}

/// Middleware on `/mcp`, after authentication: old-style stream requests go to the old
/// transport, everything else on to the streamable one.
pub async fn dispatch(State(old): State<OldSse>, request: Request, next: Next) -> Response {
    if wants_old_stream(&request) {
        old.open_stream(request).await
    } else {
        next.run(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(headers: &[(&str, &str)]) -> Request {
        let mut builder = http::Request::builder().method(Method::GET).uri("/mcp");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn only_a_sessionless_event_stream_get_is_old_style() {
        assert!(wants_old_stream(&get(&[("accept", "text/event-stream")])));
        assert!(wants_old_stream(&get(&[(
            "accept",
            "application/json, Text/Event-Stream;q=0.9"
        )])));
        assert!(!wants_old_stream(&get(&[
            ("accept", "text/event-stream"),
            ("mcp-session-id", "abc")
        ])));
        assert!(!wants_old_stream(&get(&[("accept", "application/json")])));
        assert!(!wants_old_stream(&get(&[("accept", "*/*")])));
        assert!(!wants_old_stream(&get(&[])));
        let mut post = get(&[("accept", "text/event-stream")]);
        *post.method_mut() = Method::POST;
        assert!(!wants_old_stream(&post));
    }
}
