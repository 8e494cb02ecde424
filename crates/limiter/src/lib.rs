//! Exact caps on places per key: active runs (at most N) and calls in flight (at most M).
//!
//! The gateway calls this crate around its tool calls; the crate knows nothing about Layer or
//! MCP. A [`CapKey`] says what is counted (a user, optionally in a workspace); a [`RunRef`]
//! says which run holds a place.
//!
//! - **Active runs**: [`Limiter::reserve`] takes a place *before* a run starts upstream; the
//!   [`Reservation`] is then committed to the run, kept for a run whose outcome is unknown,
//!   or cancelled. [`Limiter::release_run`] frees it when the run is over; leases free what
//!   nobody reports.
//! - **Calls in flight**: [`Limiter::acquire_call`] waits in a fair FIFO queue for a place;
//!   the [`CallPermit`] holds it until dropped.
//!
//! Two implementations behind one handle: in process ([`Limiter::in_process`], one replica)
//! and Redis ([`Limiter::redis`], exact across replicas; fails closed with
//! [`LimiterUnavailable`] when Redis is away, and recovers by itself; a Redis that comes back
//! empty gets every replica's runs written back before it grants a place again).

mod config;
mod decision;
mod error;
mod limiter;
mod local;
mod redis;
mod types;

pub use config::LimiterConfig;
pub use error::{CallError, ConfigError, LimiterUnavailable, QueueTimeout, Refusal, ReserveError};
pub use limiter::{CallPermit, Limiter, Reservation};
pub use types::{ActivePlace, CapKey, Holder, PlaceId, RunId, RunKind, RunRef};
