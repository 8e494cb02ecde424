//! URI rules: which redirect URIs a client may register, how a presented redirect URI matches
//! a registered one, and how a `resource` parameter is normalised (RFC 8707).

use url::Url;

use crate::config::is_loopback_host;

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("{0:?} is not an absolute URI")]
    NotAbsolute(String),
    #[error("{0:?} has a fragment; redirect URIs must not")]
    Fragment(String),
    #[error(
        "{0:?} is not allowed: redirect URIs must be https, http on a loopback address \
         (localhost, 127.0.0.1, [::1]), or a native app's own scheme like cursor://…"
    )]
    Scheme(String),
}

/// Schemes a browser would run, show or hand to something other than an app: never
/// acceptable as a redirect target.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "file",
    "blob",
    "about",
    "vbscript",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "filesystem",
    "view-source",
    "chrome",
    "chrome-extension",
    "intent",
];

/// Checks a redirect URI a client wants to register: https; http only on loopback; or a
/// native app's private-use scheme (RFC 8252 §7.1; Cursor registers `cursor://…`). Never
/// `javascript:`, `data:`, `file:` and the like, nor plain http to another host.
pub fn validate_redirect_uri(raw: &str) -> Result<Url, RedirectUriError> {
    let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute(raw.to_owned()))?;
    if url.fragment().is_some() {
        return Err(RedirectUriError::Fragment(raw.to_owned()));
    }
    match url.scheme() {
        "https" if url.host().is_some() && url.username().is_empty() => Ok(url),
        "http" if is_loopback_host(&url) && url.username().is_empty() => Ok(url),
        "http" | "https" => Err(RedirectUriError::Scheme(raw.to_owned())),
        scheme if !FORBIDDEN_SCHEMES.contains(&scheme) && !url.cannot_be_a_base() => Ok(url),
        scheme if scheme.contains('.') && !FORBIDDEN_SCHEMES.contains(&scheme) => Ok(url),
        _ => Err(RedirectUriError::Scheme(raw.to_owned())),
    }
}

/// Whether `presented` matches `registered`: exactly, except that a loopback http redirect
/// matches on any port (RFC 8252 §7.3: native apps pick a free port at run time).
pub fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(reg), Ok(pre)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    if reg.scheme() != "http" || pre.scheme() != "http" {
        return false;
    }
    if !is_loopback_host(&reg) || !is_loopback_host(&pre) {
        return false;
    }
    reg.host() == pre.host()
        && reg.path() == pre.path()
        && reg.query() == pre.query()
        && reg.fragment().is_none()
        && pre.fragment().is_none()
        && pre.username().is_empty()
}

/// Normalises a `resource` value: lower-case scheme and host (the URL parser does that),
/// default port dropped, trailing slash removed, no query or fragment.
pub fn normalise_resource(raw: &str) -> Option<String> {
    let url = Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.fragment().is_some()
        || url.query().is_some()
    {
        return None;
    }
    let mut s = format!("{}://{}", url.scheme(), url.host_str()?);
    if let Some(port) = url.port() {
        s.push_str(&format!(":{port}"));
    }
    s.push_str(url.path().trim_end_matches('/'));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_redirects() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://localhost:3334/oauth/callback",
            "http://127.0.0.1:33418/",
            "http://[::1]:8080/cb",
            "https://vscode.dev/redirect",
            "cursor.anysphere.app:/oauth/callback",
            "com.example.app://callback",
            "cursor://anysphere.cursor-retrieval/oauth/user-layer/callback",
        ] {
            assert!(validate_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://evil.example/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "https://claude.ai/cb#frag",
            "/relative",
            "http://127.0.0.1.evil.example/cb",
            "ftp://example.com/",
            "vbscript:msgbox",
            "about:blank",
            "blob:https://a.example/x",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_is_exact_except_loopback_ports() {
        let reg = "http://localhost:3334/oauth/callback";
        assert!(redirect_matches(reg, reg));
        assert!(redirect_matches(
            reg,
            "http://localhost:40000/oauth/callback"
        ));
        assert!(redirect_matches(reg, "http://localhost/oauth/callback"));
        assert!(!redirect_matches(reg, "http://localhost:40000/oauth/other"));
        assert!(!redirect_matches(
            reg,
            "http://127.0.0.1:3334/oauth/callback"
        ));
        let https = "https://claude.ai/api/mcp/auth_callback";
        assert!(!redirect_matches(
            https,
            "https://claude.ai/api/mcp/auth_callback/"
        ));
        assert!(!redirect_matches(
            https,
            "https://claude.ai:444/api/mcp/auth_callback"
        ));
        assert!(!redirect_matches(
            https,
            "https://CLAUDE.ai.evil/api/mcp/auth_callback"
        ));
    }

    #[test]
    fn resources_normalise() {
        for (resource, normalised) in [
            (
                "https://GW.Example.com/mcp/",
                Some("https://gw.example.com/mcp"),
            ),
            (
                "HTTPS://gw.example.com:443/mcp",
                Some("https://gw.example.com/mcp"),
            ),
            (
                "http://127.0.0.1:8080/mcp",
                Some("http://127.0.0.1:8080/mcp"),
            ),
            ("https://gw.example.com/", Some("https://gw.example.com")),
            ("https://gw.example.com/mcp#x", None),
            ("urn:x", None),
        ] {
            assert_eq!(
                normalise_resource(resource).as_deref(),
                normalised,
                "{resource}"
            );
        }
    }
}
