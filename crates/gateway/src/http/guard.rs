//! DNS-rebinding and cross-origin defence: the `Host` must be one of ours (the public URL's
//! host, plus configured extras), and an `Origin`, when present, must be allow-listed. Both
//! refusals are 403, before authentication. Also CORS for browser clients, from the same
//! Origin allow-list.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::text_error;

/// The allow-lists, normalised once at start.
#[derive(Debug, Clone)]
pub struct Guard {
    hosts: Vec<(String, Option<u16>)>,
    origins: Vec<AllowedOrigin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedOrigin {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: PortRule,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortRule {
    Any,
    Exact(u16),
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `scheme://host[:port]` → (scheme, host, effective port), lower-cased.
fn parse_origin(value: &str) -> Option<(String, String, Option<u16>)> {
    let uri: http::Uri = value.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return None;
    }
    let host = authority
        .host()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let port = authority.port_u16().or_else(|| default_port(&scheme));
    Some((scheme, host, port))
}

impl Guard {
    pub fn new(allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let hosts = allowed_hosts
            .iter()
            .filter_map(|h| {
                let authority: http::uri::Authority = h.trim().parse().ok()?;
                Some((
                    authority
                        .host()
                        .trim_matches(['[', ']'])
                        .to_ascii_lowercase(),
                    authority.port_u16(),
                ))
            })
            .collect();
        let origins = allowed_origins
            .iter()
            .filter_map(|o| {
                if o.eq_ignore_ascii_case("null") {
                    return Some(AllowedOrigin::Null);
                }
                if let Some(base) = o.strip_suffix(":*") {
                    let (scheme, host, _) = parse_origin(base)?;
                    return Some(AllowedOrigin::Tuple {
                        scheme,
                        host,
                        port: PortRule::Any,
                    });
                }
                let (scheme, host, port) = parse_origin(o)?;
                Some(AllowedOrigin::Tuple {
                    scheme,
                    host,
                    port: port.map_or(PortRule::Any, PortRule::Exact),
                })
            })
            .collect();
        Self { hosts, origins }
    }

    /// Whether a `Host` header value (or `:authority`) is ours. An empty list allows all.
    pub fn host_allowed(&self, host: &str) -> bool {
        if self.hosts.is_empty() {
            return true;
        }
        let Ok(authority) = host.parse::<http::uri::Authority>() else {
            return false;
        };
        let name = authority
            .host()
            .trim_matches(['[', ']'])
            .to_ascii_lowercase();
        let port = authority.port_u16();
        self.hosts
            .iter()
            .any(|(h, p)| *h == name && (p.is_none() || *p == port))
    }

    /// Whether an `Origin` header value is allowed.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if origin.trim().eq_ignore_ascii_case("null") {
            return self.origins.contains(&AllowedOrigin::Null);
        }
        let Some((scheme, host, port)) = parse_origin(origin) else {
            return false;
        };
        self.origins.iter().any(|allowed| match allowed {
            AllowedOrigin::Null => false,
            AllowedOrigin::Tuple {
                scheme: s,
                host: h,
                port: rule,
            } => {
                *s == scheme
                    && *h == host
                    && match rule {
                        PortRule::Any => true,
                        PortRule::Exact(p) => port == Some(*p),
                    }
            }
        })
    }

    /// CORS for `/mcp`: allow-listed origins may send the MCP headers and read the session id
    /// and the auth challenge.
    pub fn cors(self: &Arc<Self>) -> CorsLayer {
        let guard = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                origin.to_str().is_ok_and(|o| guard.origin_allowed(o))
            }))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                http::header::AUTHORIZATION,
                http::header::CONTENT_TYPE,
                http::header::ACCEPT,
                HeaderName::from_static("mcp-session-id"),
                HeaderName::from_static("mcp-protocol-version"),
                HeaderName::from_static("mcp-method"),
                HeaderName::from_static("mcp-name"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([
                HeaderName::from_static("mcp-session-id"),
                http::header::WWW_AUTHENTICATE,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(std::time::Duration::from_secs(600))
    }
}

/// The middleware: 403 for a foreign `Host` or `Origin`.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if guard.host_allowed(&host) => {}
        Some(host) => {
            tracing::warn!(
                ?host,
                "refused a request for a foreign Host (possible DNS rebinding)"
            );
            return text_error(
                StatusCode::FORBIDDEN,
                "Forbidden: Host header is not allowed",
            );
        }
        None => return text_error(StatusCode::BAD_REQUEST, "Bad Request: missing Host header"),
    }
    if let Some(origin) = request.headers().get(http::header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| guard.origin_allowed(o));
        if !allowed {
            tracing::warn!(origin = ?origin, "refused a request from a foreign Origin");
            return text_error(StatusCode::FORBIDDEN, "Forbidden: Origin is not allowed");
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> Guard {
        Guard::new(
            &["mcp.example.com".into(), "127.0.0.1:8080".into()],
            &[
                "https://mcp.example.com".into(),
                "http://localhost:*".into(),
                "null".into(),
            ],
        )
    }

    #[test]
    fn hosts() {
        let g = guard();
        assert!(g.host_allowed("mcp.example.com"));
        assert!(g.host_allowed("MCP.example.com:443"));
        assert!(g.host_allowed("127.0.0.1:8080"));
        assert!(!g.host_allowed("127.0.0.1:9999"));
        assert!(!g.host_allowed("evil.example"));
        assert!(!g.host_allowed("not a host"));
        assert!(Guard::new(&[], &[]).host_allowed("anything"));
    }

    #[test]
    fn origins() {
        let g = guard();
        assert!(g.origin_allowed("https://mcp.example.com"));
        assert!(g.origin_allowed("https://mcp.example.com:443"));
        assert!(!g.origin_allowed("https://mcp.example.com:8443"));
        assert!(!g.origin_allowed("http://mcp.example.com"));
        assert!(g.origin_allowed("http://localhost:6274"));
        assert!(g.origin_allowed("null"));
        assert!(!g.origin_allowed("https://evil.example"));
        assert!(!g.origin_allowed("garbage"));
        assert!(!Guard::new(&[], &[]).origin_allowed("https://mcp.example.com"));
    }
}
