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
//! Choices where the brief was silent:
//! - any port is allowed by default: the address check, not the port, is what keeps fetches
//!   off private networks ([`Ports::Only`] narrows it);
//! - an `https` URL may redirect to `http` unless [`FetchPolicy::https_only`] is set;
//! - only `200 OK` is a success; other statuses are [`FetchError::Status`];
//! - allow-listed hosts skip the address check only; the scheme, credential and port rules
//!   and the byte and time limits still apply;
//! - IPv4-mapped, NAT64 (`64:ff9b::/96`), 6to4 and Teredo addresses are judged by the IPv4
//!   address they embed (so `::ffff:8.8.8.8` is allowed); IPv4-compatible `::a.b.c.d`, the
//!   local-use NAT64 prefix `64:ff9b:1::/48` and everything outside `2000::/3` are refused;
//! - [`SafeFetcher::fetch_json`] follows no redirects and accepts only `200 OK` with a JSON
//!   content type, as the OAuth Client ID Metadata Document draft requires; it caps at 64 KiB
//!   by default ([`FetchPolicy::json_max_bytes`]): a 5 KiB cap elsewhere has been reported as
//!   too small for Claude.ai's document.
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
