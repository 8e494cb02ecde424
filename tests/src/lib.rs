//! Harness for the end-to-end tests: real processes on loopback, real MCP clients.
//!
//! Everything here starts something real and stops it when dropped: the Layer simulator
//! in-process ([`sim`]), gateway processes ([`gateway`]), a Redis server ([`redis`]), and the npm and PyPI clients that
//! `scripts/setup-test-deps` installed ([`clients`]). [`mcp`] is a small Rust MCP client
//! (rmcp) for scripted calls where a real client would add nothing but time; [`legacy_sse`]
//! opens streams of the older HTTP+SSE transport in bulk and reads a process's memory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

pub mod clients;
pub mod gateway;
pub mod legacy_sse;
pub mod mcp;
pub mod oauth;
pub mod paths;
pub mod process;
pub mod redis;
pub mod sim;

/// A port the OS considers free right now. Another process could take it before it is used;
/// on loopback in a test run that race is rare enough, and the alternative (parsing a port
/// from a child's output) cannot work for processes that must know their public URL first.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}
