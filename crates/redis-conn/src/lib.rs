//! Turning a Redis URL into connections, the same way for every crate that uses Redis.
//!
//! - [`RedisUrl`]: a validated URL (`redis://`, `rediss://`, `redis+unix://`, `unix://`)
//!   whose `Debug`/`Display` never show its credentials; [`redact_url`] for raw text.
//! - [`client`]: a `redis::Client` (for pub/sub, or a [`manager`]); `rediss://` verifies the
//!   server against the system roots, or against a private CA ([`Tls::ca_file`]).
//! - [`manager`]: a lazy `ConnectionManager` with connect and response timeouts and no
//!   retries inside it, so a call during an outage fails at once and the next call tries a
//!   fresh connection.

mod connect;
mod url;

pub use connect::{ConnectError, Tls, client, describe, manager, tls_failure};
pub use url::{RedisUrl, UrlError, redact_url};
