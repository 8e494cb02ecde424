//! End-to-end tests of safe-fetch against real HTTP servers on loopback.

// Test helpers panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod json;
mod limits;
mod pinning;
mod redirects;
mod refusals;
mod server;
mod sniffing;

use safe_fetch::{FetchError, FetchPolicy, Refusal, SafeFetcher};
use server::TestServer;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The default policy with `server` allow-listed (host and port).
pub fn allowing(server: &TestServer) -> FetchPolicy {
    FetchPolicy::default()
        .allow_host(&server.authority())
        .unwrap()
}

pub fn fetcher_allowing(server: &TestServer) -> SafeFetcher {
    SafeFetcher::new(allowing(server))
}

/// The address refusal behind `err`, or a panic naming what `err` was instead.
pub fn refusal(err: &FetchError) -> &Refusal {
    err.refusal()
        .unwrap_or_else(|| panic!("expected a refusal, got: {err}"))
}
