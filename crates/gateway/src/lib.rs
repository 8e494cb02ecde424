//! The hosted MCP gateway for Layer: MCP clients call Layer's tools over streamable HTTP at
//! `/mcp`, each call forwarded to Layer's API with the caller's own credential.
//!
//! - [`config`]: settings (TOML file, `LAYER_MCP_*` env, flags), checked at start;
//! - [`app`]: the axum router (`/mcp`, `/healthz`, `/readyz`) and [`app::start`];
//! - [`http`]: the tower layers in front of rmcp (guard, auth, sessions, protocol, accept);
//! - [`auth`]: bearer extraction, the PAT authenticator and its cache, the 401 challenge;
//! - [`sessions`]: which user owns which MCP session, with a per-user cap;
//! - [`shared`]: the state replicas share in Redis (sessions, their events, the session
//!   registry, the PAT cache) and the one Redis connection helper;
//! - [`mcp`]: the rmcp server handler; [`tools`]: the 18 tools; [`errors`]: the one
//!   failure-to-result mapping; [`upstream`]: the way to Layer and its choke point;
//! - [`caps`]: the per-user caps of issue 5 (active runs, calls in flight) around every
//!   upstream call; [`cancel`]: how a call learns its client went away;
//! - [`legacy`]: the older HTTP+SSE transport (`GET /mcp` or `/sse`, `POST /messages`) on
//!   the same handler;
//! - [`fetch`]: the SSRF-guarded downloader `upload_file` uses; [`demo`]: `demo`;
//! - [`oauth`]: the OAuth authorization server (crate `auth-server`) wired in;
//! - [`settings`]: every setting `serve` knows, listed for the deployment checks;
//!   [`healthcheck`]: the container health check (`/healthz`) without a shell.

pub mod app;
pub mod auth;
pub mod cancel;
pub mod caps;
pub mod config;
pub mod demo;
pub mod errors;
pub mod fetch;
pub mod healthcheck;
pub mod http;
pub mod legacy;
pub mod legacy_directory;
pub mod mcp;
pub mod oauth;
pub mod sessions;
pub mod settings;
pub mod shared;
pub mod tools;
pub mod upstream;

pub use app::{RunningGateway, Services, start};
pub use config::Config;
