//! What a [`SafeFetcher`](crate::SafeFetcher) may fetch: limits, ports, and the operator's
//! allow-list.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use url::{Host, Url};

use crate::error::FetchError;

/// Limits and exceptions for fetching. Start from [`FetchPolicy::default`] and adjust.
#[derive(Clone)]
pub struct FetchPolicy {
    pub(crate) max_bytes: u64,
    pub(crate) json_max_bytes: u64,
    pub(crate) timeout: Duration,
    pub(crate) max_redirects: usize,
    pub(crate) ports: Ports,
    pub(crate) https_only: bool,
    pub(crate) allow_hosts: Vec<AllowedHost>,
    pub(crate) user_agent: String,
    pub(crate) extra_roots: Vec<reqwest::Certificate>,
}

/// Which ports a URL may name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Any port. The address check is what keeps fetches off private networks, so a public
    /// host on an unusual port is allowed.
    Any,
    /// Only these (after applying the scheme's default port).
    Only(BTreeSet<u16>),
}

impl Default for FetchPolicy {
    /// 64 MiB per download, 64 KiB per JSON document, 30 s per fetch (all hops included),
    /// at most 3 redirects, any port, http and https, no allow-listed hosts.
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            json_max_bytes: 64 * 1024,
            timeout: Duration::from_secs(30),
            max_redirects: 3,
            ports: Ports::Any,
            https_only: false,
            allow_hosts: Vec::new(),
            user_agent: concat!("safe-fetch/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_roots: Vec::new(),
        }
    }
}

/// Builder methods that each set one field of the policy.
macro_rules! setters {
    ($($(#[$doc:meta])* $field:ident: $ty:ty;)+) => {$(
        $(#[$doc])*
        pub fn $field(mut self, $field: $ty) -> Self {
            self.$field = $field;
            self
        }
    )+};
}

impl FetchPolicy {
    setters! {
        /// The byte cap for [`SafeFetcher::fetch`](crate::SafeFetcher::fetch).
        max_bytes: u64;
        /// The byte cap for [`SafeFetcher::fetch_json`](crate::SafeFetcher::fetch_json).
        json_max_bytes: u64;
        /// The time limit for one whole fetch: name resolution, every redirect hop and the
        /// body.
        timeout: Duration;
        /// How many redirects [`SafeFetcher::fetch`](crate::SafeFetcher::fetch) follows.
        max_redirects: usize;
        /// Restrict ports.
        ports: Ports;
        /// Refuse plain `http` (for the first URL and every redirect).
        https_only: bool;
    }

    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Skip the address check for this host: `host` (any port) or `host:port`; IPv6 as
    /// `[::1]:8080`. The only way around the check; scheme, credential and port rules still
    /// apply.
    pub fn allow_host(mut self, entry: &str) -> Result<Self, FetchError> {
        self.allow_hosts.push(entry.parse()?);
        Ok(self)
    }

    /// Trust this PEM certificate as a root, besides the system's (a private CA, or a test's
    /// self-signed certificate).
    pub fn add_root_certificate_pem(mut self, pem: &[u8]) -> Result<Self, FetchError> {
        let cert = reqwest::Certificate::from_pem(pem)
            .map_err(|e| FetchError::InvalidPolicy(format!("root certificate: {e}")))?;
        self.extra_roots.push(cert);
        Ok(self)
    }

    pub fn allowed_hosts(&self) -> &[AllowedHost] {
        &self.allow_hosts
    }

    pub(crate) fn is_allow_listed(&self, url: &Url, port: u16) -> bool {
        let Some(host) = url.host().map(|h| normalise(h.to_owned())) else {
            return false;
        };
        self.allow_hosts
            .iter()
            .any(|entry| entry.host == host && entry.port.is_none_or(|p| p == port))
    }

    pub(crate) fn port_allowed(&self, port: u16) -> bool {
        match &self.ports {
            Ports::Any => true,
            Ports::Only(set) => set.contains(&port),
        }
    }
}

impl fmt::Debug for FetchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchPolicy")
            .field("max_bytes", &self.max_bytes)
            .field("json_max_bytes", &self.json_max_bytes)
            .field("timeout", &self.timeout)
            .field("max_redirects", &self.max_redirects)
            .field("ports", &self.ports)
            .field("https_only", &self.https_only)
            .field("allow_hosts", &self.allow_hosts)
            .field("user_agent", &self.user_agent)
            .field("extra_roots", &self.extra_roots.len())
            .finish()
    }
}

/// One allow-list entry: a host, and optionally the one port it applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    host: Host<String>,
    port: Option<u16>,
}

impl AllowedHost {
    pub fn host(&self) -> &Host<String> {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl FromStr for AllowedHost {
    type Err = FetchError;

    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: &str| FetchError::InvalidPolicy(format!("allow-list entry {entry:?}: {why}"));
        let entry = entry.trim();
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("expected :port"))?,
                ),
            };
            (format!("[{v6}]"), port)
        } else {
            match entry.split_once(':') {
                Some((host, port)) if !port.contains(':') => (host.to_owned(), Some(port)),
                Some(_) => (format!("[{entry}]"), None),
                None => (entry.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = port
            .map(|p| p.parse::<u16>().map_err(|_| bad("bad port")))
            .transpose()?;
        // Parse as a URL host, so the entry is spelled the way URLs are compared: lowercase,
        // IDNA, and IPv4 in dotted-decimal whatever spelling the operator used.
        let host = Host::parse(&host).map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            host: normalise(host),
            port,
        })
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}", self.host),
        }
    }
}

/// `example.com.` and `example.com` name the same host.
fn normalise(host: Host<String>) -> Host<String> {
    match host {
        Host::Domain(d) => Host::Domain(d.trim_end_matches('.').to_owned()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(entry: &str, url: &str) -> bool {
        let policy = FetchPolicy::default().allow_host(entry).unwrap();
        let url = Url::parse(url).unwrap();
        let port = url.port_or_known_default().unwrap();
        policy.is_allow_listed(&url, port)
    }

    #[test]
    fn allow_list_matches_host_and_optional_port() {
        assert!(allows("127.0.0.1:8080", "http://127.0.0.1:8080/x"));
        assert!(!allows("127.0.0.1:8080", "http://127.0.0.1:8081/x"));
        assert!(allows("sim.local", "http://SIM.local:9/x"));
        assert!(allows("sim.local", "https://sim.local./x"));
        assert!(!allows("sim.local", "https://evil-sim.local/x"));
        assert!(allows("[::1]:3000", "http://[::1]:3000/"));
        assert!(allows("::1", "http://[::1]:3000/"));
        assert!(allows("localhost:80", "http://localhost/"));
        // The entry is normalised like a URL host: 2130706433 is 127.0.0.1.
        assert!(allows("2130706433", "http://127.0.0.1/"));
        assert!(!allows("127.0.0.1", "http://localhost/"));
    }

    #[test]
    fn bad_allow_list_entries_are_rejected() {
        for bad in ["", ":80", "host:port", "[::1", "[::1]x", "a b"] {
            assert!(AllowedHost::from_str(bad).is_err(), "{bad:?}");
        }
    }
}
