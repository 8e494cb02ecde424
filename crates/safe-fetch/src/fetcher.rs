//! The fetch itself: check, connect to what was checked, follow redirects by hand, read with
//! a cap.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Response, StatusCode};
use serde::de::DeserializeOwned;
use url::{Host, Url};

use crate::addr::check_ip;
use crate::error::{FetchError, RedactedUrl, Refusal};
use crate::policy::FetchPolicy;
use crate::resolve::{Resolver, SystemResolver};
use crate::sniff::{SniffedType, sniff};

/// How many pinned clients (one per host and checked address set) are kept for connection
/// reuse before the cache is emptied and started again.
const CLIENT_CACHE_CAP: usize = 64;
/// Never preallocate more than this from a `Content-Length` the server chose.
const MAX_PREALLOCATION: u64 = 1024 * 1024;

/// Downloads URLs from the public internet under a [`FetchPolicy`]. Cheap to clone; clones
/// share their connection pools.
#[derive(Clone)]
pub struct SafeFetcher {
    policy: Arc<FetchPolicy>,
    resolver: Arc<dyn Resolver>,
    clients: Arc<Mutex<HashMap<PinKey, Client>>>,
}

/// A successful download.
#[derive(Clone)]
pub struct Fetched {
    /// The URL the bytes came from, after redirects.
    pub final_url: Url,
    /// The server's `Content-Type`, as sent (trust [`Fetched::sniffed`] instead).
    pub content_type_header: Option<String>,
    pub bytes: Bytes,
    /// The type told from the bytes.
    pub sniffed: SniffedType,
}

impl fmt::Debug for Fetched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("final_url", &RedactedUrl::new(&self.final_url))
            .field("content_type_header", &self.content_type_header)
            .field("len", &self.bytes.len())
            .field("sniffed", &self.sniffed)
            .finish()
    }
}

/// A JSON document fetched by [`SafeFetcher::fetch_json`].
#[derive(Clone)]
pub struct JsonDocument<T> {
    /// Always the requested URL: redirects are not followed for JSON documents.
    pub url: Url,
    pub value: T,
    /// The server's `Cache-Control`, for callers that cache the document.
    pub cache_control: Option<String>,
}

impl<T: fmt::Debug> fmt::Debug for JsonDocument<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonDocument")
            .field("url", &RedactedUrl::new(&self.url))
            .field("value", &self.value)
            .field("cache_control", &self.cache_control)
            .finish()
    }
}

/// A URL that passed the checks, with the addresses a fetch of it would connect to.
#[derive(Clone)]
pub struct Checked {
    pub url: Url,
    /// Every address the host resolved to (or the literal address), all public unless
    /// `allow_listed`.
    pub addrs: Vec<IpAddr>,
    pub allow_listed: bool,
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked")
            .field("url", &RedactedUrl::new(&self.url))
            .field("addrs", &self.addrs)
            .field("allow_listed", &self.allow_listed)
            .finish()
    }
}

impl fmt::Debug for SafeFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafeFetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// One reqwest client may serve every fetch of `host` whose check produced exactly `addrs`:
/// it can only ever connect to those.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PinKey {
    host: String,
    addrs: Vec<IpAddr>,
}

/// What one fetch variant allows.
struct Mode {
    max_bytes: u64,
    follow_redirects: bool,
    accept: &'static str,
}

impl Mode {
    /// Anything, following redirects.
    fn download(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            follow_redirects: true,
            accept: "*/*",
        }
    }

    /// A JSON document, at the URL given.
    fn json(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            follow_redirects: false,
            accept: "application/json",
        }
    }
}

impl SafeFetcher {
    /// A fetcher that resolves names with the operating system's resolver.
    pub fn new(policy: FetchPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
            resolver: Arc::new(SystemResolver),
            clients: Arc::default(),
        }
    }

    /// Resolve names with `resolver` instead.
    pub fn with_resolver(mut self, resolver: impl Resolver) -> Self {
        self.resolver = Arc::new(resolver);
        self.clients = Arc::default();
        self
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Download `url` (following up to the policy's redirect limit), capped at the policy's
    /// `max_bytes`, within its time limit. Any answer but `200 OK` is an error.
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let url = parse(url)?;
        let mode = Mode::download(self.policy.max_bytes);
        self.within_time_limit(async {
            let (final_url, response) = self.open(url, &mode).await?;
            let content_type_header = header(&response, CONTENT_TYPE);
            let bytes = read_capped(&final_url, response, mode.max_bytes).await?;
            Ok(Fetched {
                sniffed: sniff(&bytes),
                final_url,
                content_type_header,
                bytes,
            })
        })
        .await
    }

    /// Fetch a JSON document, such as an OAuth Client ID Metadata Document: the same address
    /// rules, the smaller `json_max_bytes` cap, no redirects, `200 OK` only, and a content type
    /// of `application/json` or `application/<something>+json`.
    pub async fn fetch_json<T: DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<JsonDocument<T>, FetchError> {
        let url = parse(url)?;
        let mode = Mode::json(self.policy.json_max_bytes);
        self.within_time_limit(async {
            let (url, response) = self.open(url, &mode).await?;
            let content_type = header(&response, CONTENT_TYPE);
            if !content_type.as_deref().is_some_and(is_json_media_type) {
                return Err(FetchError::NotJsonContentType {
                    url: RedactedUrl::new(&url),
                    content_type,
                });
            }
            let cache_control = header(&response, CACHE_CONTROL);
            let bytes = read_capped(&url, response, mode.max_bytes).await?;
            let value = serde_json::from_slice(&bytes).map_err(|e| FetchError::InvalidJson {
                url: RedactedUrl::new(&url),
                message: e.to_string(),
            })?;
            Ok(JsonDocument {
                url,
                value,
                cache_control,
            })
        })
        .await
    }

    /// Run the checks a fetch of `url` would start with, without connecting.
    pub async fn check(&self, url: &str) -> Result<Checked, FetchError> {
        let url = parse(url)?;
        self.within_time_limit(self.check_url(url)).await
    }

    async fn within_time_limit<T>(
        &self,
        fut: impl Future<Output = Result<T, FetchError>>,
    ) -> Result<T, FetchError> {
        let after = self.policy.timeout;
        tokio::time::timeout(after, fut)
            .await
            .unwrap_or(Err(FetchError::TimedOut { after }))
    }

    /// Send the request, following redirects by hand so that every hop is checked; returns the
    /// final URL and its `200 OK` response with the body unread.
    async fn open(&self, mut url: Url, mode: &Mode) -> Result<(Url, Response), FetchError> {
        let mut hop = 0;
        loop {
            let checked = match self.check_url(url).await {
                Ok(checked) => checked,
                Err(FetchError::Refused { url, refusal }) if hop > 0 => {
                    return Err(FetchError::RedirectRefused {
                        hop,
                        to: url,
                        refusal,
                    });
                }
                Err(e) => return Err(e),
            };
            let client = self.client_for(&checked)?;
            let response = client
                .get(checked.url.clone())
                .header(ACCEPT, mode.accept)
                .send()
                .await
                .map_err(|e| transport(&checked.url, e))?;
            verify_peer(&checked, &response)?;
            url = checked.url;

            let status = response.status();
            if is_followable_redirect(status) {
                if !mode.follow_redirects {
                    return Err(FetchError::RedirectNotAllowed {
                        url: RedactedUrl::new(&url),
                        status,
                    });
                }
                if hop >= self.policy.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        limit: self.policy.max_redirects,
                    });
                }
                let next = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|location| url.join(location).ok())
                    .ok_or_else(|| FetchError::BadRedirect {
                        url: RedactedUrl::new(&url),
                        status,
                    })?;
                hop += 1;
                url = next;
                continue;
            }
            if status != StatusCode::OK {
                return Err(FetchError::Status {
                    url: RedactedUrl::new(&url),
                    status,
                });
            }
            return Ok((url, response));
        }
    }

    /// Scheme, credentials, port, then every address the host resolves to.
    async fn check_url(&self, url: Url) -> Result<Checked, FetchError> {
        let refuse = |url: &Url, refusal| FetchError::Refused {
            url: RedactedUrl::new(url),
            refusal,
        };
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => !self.policy.https_only,
            _ => false,
        };
        if !scheme_ok {
            return Err(refuse(&url, Refusal::Scheme(url.scheme().to_owned())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse(&url, Refusal::Credentials));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| FetchError::InvalidUrl("no port".to_owned()))?;
        if !self.policy.port_allowed(port) {
            return Err(refuse(&url, Refusal::Port(port)));
        }
        let (name, addrs) = match url.host() {
            None => return Err(FetchError::InvalidUrl("no host".to_owned())),
            Some(Host::Ipv4(ip)) => (None, vec![IpAddr::V4(ip)]),
            Some(Host::Ipv6(ip)) => (None, vec![IpAddr::V6(ip)]),
            Some(Host::Domain(name)) => (Some(name.to_owned()), self.resolve(name, port).await?),
        };
        let allow_listed = self.policy.is_allow_listed(&url, port);
        if !allow_listed {
            for &addr in &addrs {
                if let Err(blocked) = check_ip(addr) {
                    let host = name.clone();
                    return Err(refuse(
                        &url,
                        Refusal::BlockedAddress {
                            host,
                            addr,
                            blocked,
                        },
                    ));
                }
            }
        }
        Ok(Checked {
            url,
            addrs,
            allow_listed,
        })
    }

    async fn resolve(&self, name: &str, port: u16) -> Result<Vec<IpAddr>, FetchError> {
        let mut addrs = self
            .resolver
            .resolve(name, port)
            .await
            .map_err(|e| FetchError::Dns {
                host: name.to_owned(),
                message: e.to_string(),
            })?;
        let mut seen = Vec::with_capacity(addrs.len());
        addrs.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        if addrs.is_empty() {
            return Err(FetchError::NoAddresses {
                host: name.to_owned(),
            });
        }
        Ok(addrs)
    }

    /// A client that connects `checked`'s host only to `checked.addrs`, shared with earlier
    /// fetches that were checked to the same addresses so their idle connections are reused.
    fn client_for(&self, checked: &Checked) -> Result<Client, FetchError> {
        let host = checked.url.host_str().unwrap_or_default().to_owned();
        let mut addrs = checked.addrs.clone();
        addrs.sort();
        let key = PinKey { host, addrs };
        if let Some(client) = self.lock_clients().get(&key) {
            return Ok(client.clone());
        }
        let client = self.build_client(&key)?;
        let mut clients = self.lock_clients();
        if clients.len() >= CLIENT_CACHE_CAP {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<PinKey, Client>> {
        // The map holds no invariant a panicking holder could break.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn build_client(&self, key: &PinKey) -> Result<Client, FetchError> {
        // Port 0: reqwest substitutes the URL's port.
        let pinned: Vec<SocketAddr> = key.addrs.iter().map(|ip| (*ip, 0).into()).collect();
        Client::builder()
            // A proxy would resolve the name again, out of our sight.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(RefuseUnpinned))
            .resolve_to_addrs(&key.host, &pinned)
            .user_agent(self.policy.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .tls_certs_merge(self.policy.extra_roots.iter().cloned())
            .build()
            .map_err(|e| FetchError::Client(describe(&e.without_url())))
    }
}

/// The DNS resolver of every pinned client: pinned names never reach it (their addresses are
/// fixed with `resolve_to_addrs`), so anything that does is refused rather than resolved.
struct RefuseUnpinned;

impl reqwest::dns::Resolve for RefuseUnpinned {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let message = format!(
            "safe-fetch: {} was not pinned to checked addresses",
            name.as_str()
        );
        Box::pin(async move { Err(message.into()) })
    }
}

fn parse(url: &str) -> Result<Url, FetchError> {
    // url's messages describe the problem without echoing the input.
    Url::parse(url.trim()).map_err(|e| FetchError::InvalidUrl(e.to_string()))
}

fn header(response: &Response, name: reqwest::header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn is_followable_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.len() > "+json".len() && sub.ends_with("+json"))
}

/// Defence in depth: the connection must have gone to one of the checked addresses.
fn verify_peer(checked: &Checked, response: &Response) -> Result<(), FetchError> {
    let peer = response.remote_addr().map(|a| a.ip().to_canonical());
    match peer {
        Some(ip) if checked.addrs.iter().any(|a| a.to_canonical() == ip) => Ok(()),
        _ => Err(FetchError::UnexpectedPeer {
            url: RedactedUrl::new(&checked.url),
            peer,
        }),
    }
}

/// Read the body, stopping (and dropping the connection) as soon as it passes `max`.
async fn read_capped(url: &Url, mut response: Response, max: u64) -> Result<Bytes, FetchError> {
    if let Some(declared) = response.content_length()
        && declared > max
    {
        return Err(FetchError::DeclaredTooLarge {
            declared,
            limit: max,
        });
    }
    let prealloc = response
        .content_length()
        .unwrap_or(0)
        .min(MAX_PREALLOCATION);
    let mut body = BytesMut::with_capacity(usize::try_from(prealloc).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, e))? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(FetchError::TooLarge { limit: max });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn transport(url: &Url, err: reqwest::Error) -> FetchError {
    FetchError::Transport {
        url: RedactedUrl::new(url),
        // reqwest's own message would carry the full URL, query string included.
        message: describe(&err.without_url()),
    }
}

/// An error and its causes, on one line.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/oauth-client+json",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in [
            "text/html",
            "application/+json",
            "text/json",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }
}
