//! What a call carries besides its body: the caller's credential and the idempotency key.

use std::fmt;

use reqwest::header::HeaderValue;
use uuid::Uuid;

/// A token that is not usable as a bearer credential. Carries no part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// Nothing was given.
    #[error("the bearer token is empty")]
    Empty,
    /// The token holds whitespace, control or non-ASCII characters, so it cannot be sent in
    /// an `Authorization` header as is.
    #[error("the bearer token contains characters not allowed in an HTTP header")]
    BadCharacters,
}

/// A caller's credential: a Layer Personal Access Token or an OAuth access token.
///
/// The value never appears in `Debug` output, errors or logs; only
/// [`BearerToken::expose_secret`] reveals it, so every place that does is easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Checks that `token` can travel as `Authorization: Bearer <token>`.
    pub fn new(token: impl Into<String>) -> Result<Self, InvalidToken> {
        let token = token.into();
        if token.is_empty() {
            return Err(InvalidToken::Empty);
        }
        // RFC 6750 b64token plus anything else visible: refuse whitespace and controls,
        // which would split or corrupt the header.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidToken::BadCharacters);
        }
        Ok(Self(token))
    }

    /// The secret itself. Call sites are the only places a token is revealed.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The `Authorization` header value, marked sensitive so HTTP layers do not log it.
    pub(crate) fn header_value(&self) -> HeaderValue {
        // `new` only admits visible ASCII, which is always a valid header value.
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
        value.set_sensitive(true);
        value
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(***)")
    }
}

impl std::str::FromStr for BearerToken {
    type Err = InvalidToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// An idempotency key that the API would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key must be 1 to 255 visible ASCII characters")]
pub struct InvalidIdempotencyKey;

/// The `Idempotency-Key` sent with a mutating POST. The same key with the same body makes the
/// server answer with the run it already created instead of starting a second one.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// A fresh random key (a UUID v4), as the client uses when the caller gives none.
    pub fn generate() -> Self {
        Self(Uuid::new_v4().hyphenated().to_string())
    }

    /// A caller's own key, e.g. derived from the MCP request that asked for the run, so a
    /// retry of that request maps to the same run.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidIdempotencyKey> {
        let key = key.into();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(key))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for IdempotencyKey {
    type Err = InvalidIdempotencyKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_debug_never_shows_the_value() {
        let token = BearerToken::new("lyr_pat_supersecret").unwrap();
        assert_eq!(format!("{token:?}"), "BearerToken(***)");
        assert_eq!(format!("{:?}", Some(&token)), "Some(BearerToken(***))");
        assert!(token.header_value().is_sensitive());
        assert_eq!(
            token.header_value().to_str().unwrap(),
            "Bearer lyr_pat_supersecret"
        );
    }

    #[test]
    fn token_refuses_what_cannot_be_a_header() {
        assert_eq!(BearerToken::new(""), Err(InvalidToken::Empty));
        assert_eq!(
            BearerToken::new("abc def"),
            Err(InvalidToken::BadCharacters)
        );
        assert_eq!(
            BearerToken::new("abc\r\nX-Evil: 1"),
            Err(InvalidToken::BadCharacters)
        );
        let err = BearerToken::new("sécret").unwrap_err();
        assert!(!err.to_string().contains("sécret"));
    }

    #[test]
    fn idempotency_keys() {
        let a = IdempotencyKey::generate();
        let b = IdempotencyKey::generate();
        assert_ne!(a, b);
        assert!(Uuid::parse_str(a.as_str()).is_ok());
        assert!(IdempotencyKey::new("mcp-req-42").is_ok());
        assert!(IdempotencyKey::new("").is_err());
        assert!(IdempotencyKey::new("has space").is_err());
        assert!(IdempotencyKey::new("x".repeat(256)).is_err());
    }
}
