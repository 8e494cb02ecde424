//! The gateway's own OAuth access tokens, beside PATs: a token that is one of our
//! JWTs is verified by the authorization server and resolved to the Layer token held for its
//! grant (refreshed at Layer when due); anything else goes to the PAT authenticator.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use auth_server::{AuthServer, GrantId};
use layer_api::BearerToken;
use secrecy::ExposeSecret;

use super::{
    AuthError, Authenticator, Caller, CredentialKind, PresentedToken, SharedAuthenticator, UserId,
};

/// OAuth first for our own tokens, PATs otherwise.
pub struct OAuthAuthenticator {
    server: AuthServer,
    pats: SharedAuthenticator,
    /// Which grant each Layer token handed out belongs to (keyed by a hash of the token), so
    /// a token Layer rejects mid-call can be refreshed on the next request.
    grants: Mutex<HashMap<super::cache::CacheKey, GrantId>>,
}

impl OAuthAuthenticator {
    pub fn new(server: AuthServer, pats: SharedAuthenticator) -> Self {
        Self {
            server,
            pats,
            grants: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, layer_token: &str, grant: &GrantId) {
        let mut grants = self.grants.lock().unwrap_or_else(|p| p.into_inner());
        if grants.len() >= 50_000 {
            // Old entries only matter for tokens still in use; start afresh rather than grow.
            grants.clear();
        }
        grants.insert(super::cache::CacheKey::of_token(layer_token), grant.clone());
    }
}

fn unavailable(reason: String) -> AuthError {
    AuthError::Unavailable {
        reason,
        retry_after: Duration::from_secs(2),
    }
}

#[async_trait::async_trait]
impl Authenticator for OAuthAuthenticator {
    async fn authenticate(&self, token: &PresentedToken) -> Result<Caller, AuthError> {
        if !self.server.is_own_token(token.expose_secret()) {
            return self.pats.authenticate(token).await;
        }
        let map = |e: auth_server::AuthError| match e {
            auth_server::AuthError::Unavailable(reason) => unavailable(reason),
            other => AuthError::Rejected {
                reason: other.to_string(),
            },
        };
        let caller = self
            .server
            .authenticate(token.expose_secret())
            .await
            .map_err(map)?;
        let layer_token = self.server.upstream_token(&caller).await.map_err(map)?;
        self.remember(layer_token.expose_secret(), &caller.grant_id);
        let upstream = BearerToken::new(layer_token.expose_secret().to_owned()).map_err(|_| {
            unavailable("Layer issued a token the gateway cannot forward".to_owned())
        })?;
        Ok(Caller::new(
            UserId::for_subject(caller.subject.as_str()),
            CredentialKind::OAuth,
            upstream,
        ))
    }

    async fn forget(&self, token: &BearerToken) {
        let key = super::cache::CacheKey::of_token(token.expose_secret());
        let grant = self
            .grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        match grant {
            // Layer rejected the token held for a grant: refresh it on the next request.
            Some(grant) => self.server.upstream_rejected(&grant).await,
            None => self.pats.forget(token).await,
        }
    }
}
