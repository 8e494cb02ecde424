//! The records the authorization server keeps, and the identifiers that name them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; every stored time uses it.
pub type UnixMillis = i64;

/// Now, in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// An OAuth client: a registered id (`lmc_…`) or a Client ID Metadata Document URL.
    ClientId
);
id_type!(
    /// One user's authorization of one client: every token issued from one login.
    GrantId
);
id_type!(
    /// The user, as Layer's identity provider names them (the id token's `sub`).
    Subject
);

/// How a client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    None,
    ClientSecretPost,
    ClientSecretBasic,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            _ => None,
        }
    }
}

/// Where a client's registration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Registered through `/register` (RFC 7591).
    Dynamic,
    /// A cached Client ID Metadata Document.
    MetadataDocument,
}

/// A client the server knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub id: ClientId,
    pub kind: ClientKind,
    /// `token_hash("client-secret", secret)` for confidential clients.
    pub secret_hash: Option<String>,
    pub auth_method: ClientAuthMethod,
    pub redirect_uris: Vec<String>,
    pub name: Option<String>,
    pub client_uri: Option<String>,
    pub created_at: UnixMillis,
    pub last_used_at: UnixMillis,
    /// When a cached metadata document must be fetched again (`MetadataDocument` only).
    pub refresh_after: Option<UnixMillis>,
}

/// An authorization request waiting for the user's consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub id: String,
    pub csrf_hash: String,
    /// Binds the consent to the browser that saw it and to this client.
    pub browser_binding: String,
    pub request: AuthorizationRequest,
    pub expires_at: UnixMillis,
}

/// A validated authorization request, carried through consent and the upstream login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: ClientId,
    pub redirect_uri: String,
    pub state: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
}

/// The gateway's own login at Layer's identity provider, between consent and callback.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamLogin {
    /// `token_hash("upstream-state", state)`.
    pub state_hash: String,
    pub browser_binding: String,
    pub request: AuthorizationRequest,
    /// The PKCE verifier and nonce of the upstream request, sealed with the encryption key.
    pub sealed_secrets: Vec<u8>,
    pub expires_at: UnixMillis,
}

/// One user's authorization of one client, holding Layer's tokens for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    pub id: GrantId,
    pub subject: Subject,
    pub client_id: ClientId,
    pub scope: String,
    pub resource: String,
    pub created_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
    pub upstream: SealedUpstream,
}

impl GrantRecord {
    pub fn is_live(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Layer's tokens for a grant, encrypted (AES-256-GCM, the grant id as associated data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedUpstream {
    pub sealed: Vec<u8>,
    /// When Layer's access token expires (not secret; lets a refresh be planned unsealed).
    pub access_expires_at: UnixMillis,
    /// Incremented on every refresh: the compare-and-swap that makes a refresh happen once.
    pub version: i64,
}

/// An authorization code waiting for its exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// `token_hash("code", code)`.
    pub hash: String,
    pub grant_id: GrantId,
    pub request: AuthorizationRequest,
    pub expires_at: UnixMillis,
}

/// What taking a code once found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TakeCode {
    /// First use, within its lifetime: it is now spent.
    Fresh(CodeRecord),
    /// Its lifetime is over (also spent now).
    Expired(CodeRecord),
    /// Used before: the store has revoked the grant issued from it.
    Replayed(GrantId),
    NotFound,
}

/// A refresh token (only its hash is stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// `token_hash("refresh", token)`.
    pub hash: String,
    pub grant_id: GrantId,
    pub client_id: ClientId,
    pub issued_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// When it was exchanged for a successor; it stays usable for the grace window after.
    pub rotated_at: Option<UnixMillis>,
}

/// What rotating a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was current: it is now rotated and the successor stored.
    Rotated(GrantRecord),
    /// The token was rotated moments ago (within the grace window): a second successor was
    /// stored, so both concurrent refreshers get working tokens.
    WithinGrace(GrantRecord),
    /// The token was rotated before the grace window: the store has revoked the grant.
    Reused(GrantId),
    /// Unknown, expired, for another client, or its grant is revoked. Nothing changed.
    Invalid,
}

/// A key the server signs access tokens with. The private key is sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// PKCS#8 of the P-256 key, sealed with the encryption key (context `signing-key:<kid>`).
    pub sealed_private: Vec<u8>,
    pub created_at: UnixMillis,
    /// Set when a newer key takes over; the public key stays published until
    /// `retired_at + access token lifetime`.
    pub retired_at: Option<UnixMillis>,
}

/// Counts of what a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub clients: u64,
    pub pending: u64,
    pub codes: u64,
    pub refresh_tokens: u64,
    pub grants: u64,
}
