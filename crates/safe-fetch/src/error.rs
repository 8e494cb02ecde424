//! The one error type, and the redacted URL used in every message.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use url::Url;

use crate::addr::Blocked;

/// A URL as it may appear in messages and logs: scheme, host, port and path only. The query
/// and fragment (where signed URLs keep their signatures) and any userinfo are dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    pub fn new(url: &Url) -> Self {
        let mut shown = format!("{}://", url.scheme());
        if let Some(host) = url.host_str() {
            shown.push_str(host);
        }
        if let Some(port) = url.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(url.path());
        if url.query().is_some() {
            shown.push_str("?…");
        }
        Self(shown)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Why a URL was refused before any connection was made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not an allowed scheme: {0}")]
    Scheme(String),
    #[error("credentials in the URL (user:password@) are not allowed")]
    Credentials,
    #[error("port {0} is not allowed")]
    Port(u16),
    /// `host` is the name that resolved to `addr`, `None` for a literal IP address.
    #[error("blocked address {addr} ({blocked}){}", host_suffix(.host))]
    BlockedAddress {
        host: Option<String>,
        addr: IpAddr,
        blocked: Blocked,
    },
}

fn host_suffix(host: &Option<String>) -> String {
    match host {
        Some(host) => format!(", which {host} resolves to"),
        None => String::new(),
    }
}

/// Everything that can go wrong in a fetch. Messages are safe to show to the caller and to
/// log: URLs appear only as [`RedactedUrl`].
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),

    #[error("refused: {refusal} (fetching {url})")]
    Refused { url: RedactedUrl, refusal: Refusal },

    /// Hop `hop` (1-based) of the redirect chain pointed somewhere refused.
    #[error("refused: redirect to {to}: {refusal}")]
    RedirectRefused {
        hop: usize,
        to: RedactedUrl,
        refusal: Refusal,
    },

    #[error("refused: more than {limit} redirects")]
    TooManyRedirects { limit: usize },

    #[error("refused: redirects are not followed for this fetch ({status} from {url})")]
    RedirectNotAllowed {
        url: RedactedUrl,
        status: StatusCode,
    },

    #[error("{url} answered {status} with no usable Location header")]
    BadRedirect {
        url: RedactedUrl,
        status: StatusCode,
    },

    #[error("could not resolve {host}: {message}")]
    Dns { host: String, message: String },

    #[error("could not resolve {host}: no addresses")]
    NoAddresses { host: String },

    #[error("too large: more than {}", human_bytes(*.limit))]
    TooLarge { limit: u64 },

    #[error("too large: Content-Length {declared} bytes is more than {}", human_bytes(*.limit))]
    DeclaredTooLarge { declared: u64, limit: u64 },

    #[error("timed out after {}", human_duration(*.after))]
    TimedOut { after: Duration },

    #[error("{url} answered {status}, expected 200 OK")]
    Status {
        url: RedactedUrl,
        status: StatusCode,
    },

    #[error("could not fetch {url}: {message}")]
    Transport { url: RedactedUrl, message: String },

    /// Defence in depth: the connection did not end up at an address that was checked.
    #[error(
        "refused: connected to {}, which was not a checked address for {url}",
        peer.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string())
    )]
    UnexpectedPeer {
        url: RedactedUrl,
        peer: Option<IpAddr>,
    },

    #[error("not a JSON document: content type {content_type:?} from {url}")]
    NotJsonContentType {
        url: RedactedUrl,
        content_type: Option<String>,
    },

    #[error("invalid JSON from {url}: {message}")]
    InvalidJson { url: RedactedUrl, message: String },

    #[error("invalid fetch policy: {0}")]
    InvalidPolicy(String),

    #[error("could not set up the HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    /// The address refusal behind this error, if it is one (at the first URL or a redirect).
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Refused { refusal, .. } | Self::RedirectRefused { refusal, .. } => Some(refusal),
            _ => None,
        }
    }
}

/// `64 MiB`, `64 KiB`, or a plain byte count.
pub(crate) fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match n {
        0 => "0 bytes".to_owned(),
        n if n % GIB == 0 => format!("{} GiB", n / GIB),
        n if n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// `30 s`, `0.25 s`.
pub(crate) fn human_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        let secs = format!("{:.3}", d.as_secs_f64());
        format!("{} s", secs.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_url_drops_query_fragment_and_userinfo() {
        let url =
            Url::parse("https://user:pw@cdn.example.com:8443/a/b.png?X-Sig=secret#frag").unwrap();
        let shown = RedactedUrl::new(&url).to_string();
        assert_eq!(shown, "https://cdn.example.com:8443/a/b.png?…");
        assert!(!shown.contains("secret") && !shown.contains("pw") && !shown.contains("user"));
    }

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(human_bytes(64 * 1024 * 1024), "64 MiB");
        assert_eq!(human_bytes(64 * 1024), "64 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 s");
        assert_eq!(human_duration(Duration::from_millis(250)), "0.25 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }
}
