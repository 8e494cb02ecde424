//! The hosted MCP gateway for Layer: MCP clients call Layer's tools over streamable HTTP at
//! `/mcp`, each call forwarded to Layer's API with the caller's own credential.
//!
//! Rooms by concern (ARCHITECTURE.md walks through them):
//!
//! - [`config`]: settings (TOML file, `LAYER_MCP_*` env, flags), checked at start;
//!   [`settings`]: every setting `serve` knows, listed for the deployment checks;
//! - `app`: the axum router (`/mcp`, `/healthz`, `/readyz`) and [`start`];
//! - `http`: the cross-cutting tower layers in front of rmcp (trace, guard, protocol, accept,
//!   disconnect, drain);
//! - [`auth`]: who is calling: bearer extraction, the PAT authenticator and its caches, our
//!   OAuth tokens, the 401 challenge, the auth layer, the authorization server's wiring;
//! - `sessions`: which user owns which MCP session (memory and Redis halves), rmcp's session
//!   and event stores on Redis, the session layer;
//! - `legacy`: the older HTTP+SSE transport (`GET /mcp` or `/sse`, `POST /messages`) on the
//!   same handler, and where its sessions are found;
//! - `caps`: the per-user caps (active runs, calls in flight) around every upstream call;
//!   `upstream`: the way to Layer and its choke point; `cancel`: how a call learns its
//!   client went away;
//! - `redis`: the one connection helper for the shared Redis and its key names;
//! - `mcp`: the rmcp server handler; [`tools`]: the tools; `errors`: the one
//!   failure-to-result mapping; `fetch`: the SSRF-guarded downloader `upload_file` uses;
//! - [`demo`] (feature `demo`): the simulator in-process with a gateway in front;
//!   [`healthcheck`]: the container health check (`/healthz`) without a shell.

pub(crate) mod app;
pub mod auth;
pub(crate) mod cancel;
pub(crate) mod caps;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub(crate) mod errors;
pub(crate) mod fetch;
pub mod healthcheck;
pub(crate) mod http;
pub(crate) mod legacy;
pub mod logs;
pub(crate) mod mcp;
pub(crate) mod redis;
pub(crate) mod sessions;
pub mod settings;
pub(crate) mod tools;
pub(crate) mod upstream;

pub use crate::redis::SharedRedis;
pub use app::{RunningGateway, Services, shutdown_signal, start};
pub use caps::LimiterStore;
pub use config::Config;
pub use sessions::{EventRetention, RedisEventStore};
pub use tools::Catalogue;
