//! Download a URL from the public internet without letting the caller reach anything private.
//!
//! The gateway fetches URLs that users control (`upload_file`, OAuth Client ID Metadata
//! Documents); this crate is the SSRF guard in front of those fetches.
//!
//! For every URL, and again for every redirect hop:
//! - the scheme must be `http` or `https` (or only `https`, see [`FetchPolicy::https_only`]),
//!   with no `user:password@`, on any port unless [`FetchPolicy::ports`] narrows it;
//! - the host is resolved once, by this crate, through a [`Resolver`]; **every** address it
//!   resolves to (or the literal address, in any spelling the URL standard accepts, such as
//!   `http://2130706433/`) must be public by [`check_ip`], or the fetch is refused;
//! - the connection goes only to the addresses that were checked: each request uses a client
//!   whose resolution of that host is pinned to them (with no other DNS and no proxy), TLS
//!   still verifies the original host name, and the peer address of the response is checked
//!   again before anything is read;
//! - hosts on the operator's allow-list ([`FetchPolicy::allow_host`]) skip the address check,
//!   and nothing else does.
//!
//! Redirects are followed here (at most [`FetchPolicy::max_redirects`], default 3), the body is
//! streamed under a byte cap (default 64 MiB; a larger `Content-Length` fails before reading),
//! and the whole fetch has one time limit (default 30 s). [`sniff`] tells the type from the
//! bytes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), safe_fetch::FetchError> {
//! use safe_fetch::{FetchPolicy, SafeFetcher, SniffedType};
//!
//! let fetcher = SafeFetcher::new(FetchPolicy::default());
//! let fetched = fetcher.fetch("https://example.com/cat.png").await?;
//! assert_eq!(fetched.sniffed, SniffedType::Png);
//! # Ok(()) }
//! ```

mod addr;
mod error;
mod fetcher;
mod policy;
mod resolve;
mod sniff;

pub use addr::{Blocked, BlockedRange, Embedding, check_ip};
pub use error::{FetchError, RedactedUrl, Refusal};
pub use fetcher::{Checked, Fetched, JsonDocument, SafeFetcher};
pub use policy::{AllowedHost, FetchPolicy, Ports};
pub use resolve::{Resolver, StaticResolver, SystemResolver};
pub use sniff::{SniffedType, sniff};
