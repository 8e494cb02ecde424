//! Who is calling: the bearer credential on each HTTP request is resolved to a [`Caller`]
//! before any MCP handling (`layer.rs`, the tower layer: 401 with the challenge of
//! `challenge.rs`, or 503), and tool handlers read that caller back from the request.
//!
//! Two credentials: a Layer Personal Access Token (`pat.rs`: checked with Layer on first
//! use, then cached under its SHA-256 in this process, `cache.rs`, or in the shared Redis,
//! `redis_cache.rs`), and the gateway's own OAuth access tokens (`oauth.rs`: an
//! [`Authenticator`] tried first for tokens that are our JWTs, yielding a `Caller` whose
//! upstream credential is the Layer token held for that grant). `server.rs` wires the
//! OAuth authorization server (crate `auth-server`) in.

pub(crate) mod bearer;
pub(crate) mod cache;
pub(crate) mod challenge;
pub(crate) mod layer;
pub(crate) mod oauth;
pub(crate) mod pat;
pub(crate) mod redis_cache;
pub(crate) mod server;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use layer_api::BearerToken;
use rmcp::service::{RequestContext, RoleServer};

pub(crate) use bearer::BearerError;
pub use bearer::PresentedToken;
pub(crate) use cache::{CredentialCache, MemoryCredentialCache};
pub(crate) use oauth::OAuthAuthenticator;
pub(crate) use pat::{PatAuthenticator, PatVerifier, VerifyError};
pub(crate) use redis_cache::RedisCredentialCache;
#[cfg(feature = "demo")]
pub use server::demo_auth_server;
pub use server::start_auth_server;

/// The identity a caller acts as: the key for session ownership, per-user caps and logs.
///
/// For a PAT, Layer's v1 API names no user, so the id is a stable hash of the PAT
/// (`pat:<32 hex>`): two PATs of one person are two users here. For OAuth it is
/// `sub:<subject>`. It is not a secret, but it is not reversible to the PAT either.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// The id of a PAT's holder: a domain-separated SHA-256 of the token, truncated.
    pub fn for_pat(token: &PresentedToken) -> Self {
        let digest =
            cache::sha256_hex(&["layer-mcp-gateway/user-id/pat/v1", token.expose_secret()]);
        Self(format!("pat:{}", &digest[..32]).into())
    }

    /// The id of an OAuth subject.
    pub fn for_subject(subject: &str) -> Self {
        Self(format!("sub:{subject}").into())
    }

    /// Rebuilds an id from its text (e.g. read back from a shared store).
    pub fn from_stored(text: impl Into<Arc<str>>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of credential the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A Layer Personal Access Token, forwarded to Layer as is.
    Pat,
    /// One of the gateway's own OAuth access tokens; Layer gets the token held for its grant.
    OAuth,
}

/// An authenticated caller: who they are and the credential that goes to Layer on their
/// behalf. Cheap to clone. `Debug` never shows the credential.
#[derive(Clone)]
pub struct Caller {
    user: UserId,
    kind: CredentialKind,
    upstream: BearerToken,
}

impl Caller {
    pub fn new(user: UserId, kind: CredentialKind, upstream: BearerToken) -> Self {
        Self {
            user,
            kind,
            upstream,
        }
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    /// The credential to send to Layer (and only to Layer).
    pub fn upstream_credential(&self) -> &BearerToken {
        &self.upstream
    }

    /// The caller of the MCP request being handled. The auth layer put it into the HTTP
    /// request's extensions; rmcp hands the request's `http::request::Parts` to the handler.
    /// Every transport that drives the tool service (the older HTTP+SSE one too) must
    /// inject `Parts` the same way; this is the one place that reads it.
    pub fn from_context(context: &RequestContext<RoleServer>) -> Option<Caller> {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("user", &self.user)
            .field("kind", &self.kind)
            .field("upstream", &self.upstream)
            .finish()
    }
}

/// Why a presented token did not yield a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token is not (or no longer) valid: HTTP 401.
    #[error("the token was rejected: {reason}")]
    Rejected { reason: String },
    /// It could not be checked right now (Layer unreachable or failing): HTTP 503. Never a
    /// 401, because clients drop credentials on 401.
    #[error("the token could not be checked right now: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
}

/// Resolves a presented bearer token to a caller.
#[async_trait::async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, token: &PresentedToken) -> Result<Caller, AuthError>;

    /// Forget anything cached about this token, e.g. after Layer rejected it during a tool
    /// call, so the next request is checked afresh (and gets its 401).
    async fn forget(&self, token: &BearerToken);
}

/// A shared authenticator.
pub type SharedAuthenticator = Arc<dyn Authenticator>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_stable_distinct_and_do_not_reveal_the_pat() {
        let a = PresentedToken::parse_token("lyr_pat_alpha").unwrap();
        let b = PresentedToken::parse_token("lyr_pat_beta").unwrap();
        assert_eq!(UserId::for_pat(&a), UserId::for_pat(&a));
        assert_ne!(UserId::for_pat(&a), UserId::for_pat(&b));
        let id = UserId::for_pat(&a).to_string();
        assert!(id.starts_with("pat:") && id.len() == 36, "{id}");
        assert!(!id.contains("alpha"));
    }

    #[test]
    fn caller_debug_redacts_the_credential() {
        let token = PresentedToken::parse_token("lyr_pat_secret_value").unwrap();
        let caller = Caller::new(
            UserId::for_pat(&token),
            CredentialKind::Pat,
            token.to_upstream(),
        );
        let shown = format!("{caller:?}");
        assert!(!shown.contains("secret_value"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
