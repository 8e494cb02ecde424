//! MCP's older HTTP+SSE transport (protocol revision 2024-11-05), serving any rmcp server
//! handler.
//!
//! rmcp ships no server for this transport, and clients still use it: Claude Code's
//! `--transport sse`, Gemini CLI's `url` entries, mcp-remote's `sse-only` strategy, older
//! Cursor and Windsurf builds. The transport is two HTTP endpoints:
//!
//! - `GET` (e.g. `/sse`) opens an event stream. Its first event is `endpoint`, whose data is
//!   the URL to POST to (`/messages?sessionId=<id>`); then come `message` events, each one
//!   JSON-RPC reply or notification from the server; keep-alive comments fill the silences.
//! - `POST <endpoint>` carries client messages (one, or a batch) for that session and is
//!   answered `202 Accepted`; the replies go out on the stream.
//!
//! One stream is one MCP session: [`LegacySse`] builds a handler from the factory when the
//! stream opens, runs it with rmcp's own service loop, and ends it when the stream closes
//! (in-flight requests are cancelled, everything the handler held is dropped). Each MCP
//! request reaches the handler with the `http::request::Parts` of the POST that delivered it
//! in its extensions, exactly as rmcp's streamable HTTP server does, so a handler finds the
//! caller the same way on both transports.
//!
//! Who may POST to a session: the identity that opened it ([`IdentityKey`], read from the
//! request by a function the embedding application provides, normally from what its
//! authentication layer put into the request extensions). Anyone else gets the same 404 as
//! for an unknown session.
//!
//! Limits ([`Config`]): streams per identity (one more closes that identity's oldest),
//! streams in total (one more is refused, 503), a bounded backlog per stream (a client that
//! stops reading is disconnected), the POST body size (413). To disconnect a client that
//! stopped reading, the server must be able to close its connection: serve the app on a
//! [`Closable`] listener with `ConnectInfo<ConnectionCloser>` (as below); without it, such
//! a stream is ended and forgotten but its connection lingers until the client goes away.
//!
//! Finding a session from a POST goes through [`SessionDirectory`]: [`LocalDirectory`] is
//! the in-process map; `RedisDirectory` (feature `redis`) delivers a POST that lands on one
//! replica to the stream another replica holds, through Redis pub/sub.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use legacy_sse::{Closable, Config, ConnectionCloser, IdentityKey, LegacySse};
//! # use tokio_util::sync::CancellationToken;
//! # #[derive(Clone)] struct MyHandler;
//! # impl rmcp::ServerHandler for MyHandler {}
//! # async fn run() -> std::io::Result<()> {
//! let shutdown = CancellationToken::new();
//! let sse = LegacySse::builder(|| Ok(MyHandler))
//!     .config(Config::default())
//!     .shutdown(shutdown.clone())
//!     .identity(|parts| {
//!         let user = parts.headers.get("x-user")?.to_str().ok()?;
//!         Some(IdentityKey::new(user))
//!     })
//!     .build()
//!     .expect("valid settings");
//! let app = sse.router("/sse", "/messages");
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(
//!     Closable::new(listener),
//!     app.into_make_service_with_connect_info::<ConnectionCloser>(),
//! )
//! .with_graceful_shutdown(shutdown.cancelled_owned())
//! .await
//! # }
//! ```

mod cancel;
mod config;
mod connection;
mod directory;
mod identity;
mod limits;
mod rejection;
mod server;
mod session;
mod transport;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "redis")]
mod redis_directory;

pub use config::{Config, ConfigError};
pub use connection::{
    Closable, ClosableConnection, ClosableIo, ConnectionCloser, split_connect_info,
};
pub use directory::{Delivery, DeliveryError, Inbox, LocalDirectory, SessionDirectory};
pub use identity::{Identify, IdentityKey};
#[cfg(feature = "redis")]
pub use redis_directory::{
    HeadersOnly, RebuildParts, RedisDirectory, RedisDirectoryConfig, RedisDirectoryError,
};
pub use server::{Builder, LegacySse, Stats};
pub use session::SessionId;
