//! Harness for the end-to-end tests: real processes on loopback, real MCP clients.
//!
//! Everything here starts something real and stops it when dropped: the Layer simulator
//! in-process ([`sim`]), gateway processes ([`gateway`]), a Redis server ([`redis`]), a round-robin proxy ([`proxy`]) and three replicas sharing Redis behind it ([`cluster`]), and the npm and PyPI clients that
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
pub mod process;
pub mod proxy;
pub mod redis;
pub mod sim;

/// A port the OS considers free right now. Another process could take it before it is used;
/// on loopback in a test run that race is rare enough, and the alternative (parsing a port
/// from a child's output) cannot work for processes that must know their public URL first.
///
/// A port is never handed out twice in one test process: tests run in parallel, and one that
/// kills a process and restarts it on the same port (a Redis, a gateway) must not find
/// another test's process there.
pub fn free_port() -> u16 {
    static USED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = listener.local_addr().expect("local addr").port();
        let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}
