//! Reading `Authorization: Bearer <token>` (RFC 6750 §2.1). Tokens are accepted only in the
//! header, never in a query string or a body.

use std::fmt;

use http::HeaderMap;
use layer_api::BearerToken;

/// The token a client presented. A secret: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken(String);

/// Why the `Authorization` header did not carry a usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error(
        "no Authorization header: send `Authorization: Bearer <your Layer Personal Access Token>`"
    )]
    Missing,
    #[error("more than one Authorization header")]
    Duplicate,
    #[error("the Authorization header must use the Bearer scheme: `Authorization: Bearer <token>`")]
    NotBearer,
    #[error("the bearer token is empty or contains characters a token cannot have")]
    Malformed,
}

impl PresentedToken {
    /// Extracts the bearer token from request headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, BearerError> {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let value = values.next().ok_or(BearerError::Missing)?;
        if values.next().is_some() {
            return Err(BearerError::Duplicate);
        }
        let value = value.to_str().map_err(|_| BearerError::Malformed)?;
        let (scheme, rest) = value.trim().split_once(' ').ok_or(BearerError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(BearerError::NotBearer);
        }
        Self::parse_token(rest.trim())
    }

    /// Validates a bare token: RFC 6750's `b64token` characters, i.e. visible ASCII with no
    /// spaces, and not absurdly long.
    pub fn parse_token(token: &str) -> Result<Self, BearerError> {
        if token.is_empty() || token.len() > 4096 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BearerError::Malformed);
        }
        Ok(Self(token.to_owned()))
    }

    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The same token as a credential for Layer (a PAT is forwarded as is).
    pub fn to_upstream(&self) -> BearerToken {
        // `parse_token` admits only visible ASCII, which BearerToken also accepts; the
        // fallback cannot happen but must not panic.
        BearerToken::new(self.0.clone()).unwrap_or_else(|_| unreachable_token())
    }
}

#[allow(clippy::expect_used)] // a constant literal
fn unreachable_token() -> BearerToken {
    BearerToken::new("invalid").expect("a constant token is valid")
}

impl fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresentedToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn extracts_bearer_tokens() {
        let t = PresentedToken::from_headers(&headers(&["Bearer abc.DEF-123_~+/="])).unwrap();
        assert_eq!(t.expose_secret(), "abc.DEF-123_~+/=");
        let t = PresentedToken::from_headers(&headers(&["bearer   xyz  "])).unwrap();
        assert_eq!(t.expose_secret(), "xyz");
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(
            PresentedToken::from_headers(&headers(&[])),
            Err(BearerError::Missing)
        );
        assert_eq!(
            PresentedToken::from_headers(&headers(&["Bearer a", "Bearer b"])),
            Err(BearerError::Duplicate)
        );
        assert_eq!(
            PresentedToken::from_headers(&headers(&["Basic dXNlcjpwYXNz"])),
            Err(BearerError::NotBearer)
        );
        assert_eq!(
            PresentedToken::from_headers(&headers(&["Bearer"])),
            Err(BearerError::NotBearer)
        );
        assert_eq!(
            PresentedToken::from_headers(&headers(&["Bearer "])),
            Err(BearerError::NotBearer)
        );
        assert_eq!(
            PresentedToken::from_headers(&headers(&["Bearer a b"])),
            Err(BearerError::Malformed)
        );
        assert_eq!(
            PresentedToken::from_headers(&headers(&["token abc"])),
            Err(BearerError::NotBearer)
        );
    }

    #[test]
    fn debug_redacts() {
        let t = PresentedToken::parse_token("secret").unwrap();
        assert_eq!(format!("{t:?}"), "PresentedToken(***)");
    }
}
