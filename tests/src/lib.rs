//! Harness for the end-to-end tests: real processes on loopback, real MCP clients.
//!
//! Everything here starts something real and stops it when dropped: the Layer simulator
//! in-process ([`sim`]), gateway processes ([`gateway`]), a Redis server ([`redis`], from
//! `test-support`, as are [`process`], [`free_port`] and [`sse`]), a round-robin proxy ([`proxy`]) and three replicas sharing Redis behind it ([`cluster`]), and the npm and PyPI clients that
//! `scripts/setup-test-deps` installed ([`clients`]). [`mcp`] is a small Rust MCP client
//! (rmcp) for scripted calls where a real client would add nothing but time; [`legacy_sse`]
//! opens streams of the older HTTP+SSE transport in bulk and reads a process's memory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

pub mod clients;
pub mod cluster;
pub mod gateway;
pub mod legacy_sse;
pub mod mcp;
pub mod oauth;
pub mod paths;
pub mod proxy;
pub mod sim;

// The pieces every test of the workspace shares live in `test-support`; re-exported so the
// harness reads as one.
pub use test_support::{free_port, process, redis, sse};
