//! What every test and benchmark of the workspace shares, so each piece is written once:
//!
//! - [`redis`]: a private Redis per test (plain, TLS with a generated CA, or durable), with
//!   kill, pause, resume and restart on the same port;
//! - [`free_port`]: a loopback port never handed out twice in one process;
//! - [`process`]: child processes that log to a file and die with the test;
//! - [`sse`]: reading `text/event-stream` bodies;
//! - [`mcp`]: raw MCP requests whose HTTP response the test holds itself;
//! - [`load`]: a closed-loop load for benchmarks (workers, latencies, calls per second);
//! - [`oauth`]: a step-by-step browser (cookies by hand, no redirects followed) and PKCE;
//! - [`sim`]: the Layer simulator's admin API (`/_sim/*`) over plain HTTP.
//!
//! Dev-only (`publish = false`); it depends on no crate it serves tests of, so any of them can
//! take it as a dev-dependency.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

pub mod load;
pub mod mcp;
pub mod oauth;
pub mod process;
pub mod redis;
pub mod sim;
pub mod sse;

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
