//! The OAuth authorization server (crate `auth-server`) wired into the gateway: from the
//! OAuth settings, and (feature `demo`) against the in-process simulator for `demo`.

use auth_server::store::is_redis_url;
use auth_server::{AuthServer, OAuthSettings, open_store_with_tls};
use secrecy::ExposeSecret;
#[cfg(feature = "demo")]
use {
    auth_server::Store,
    auth_server::config::{AuthConfig, IdpConfig},
    auth_server::crypto::EncryptionKey,
    auth_server::store::SqliteStore,
    layer_sim::RunningSim,
    std::sync::Arc,
    url::Url,
};

use crate::config::Config;

/// The gateway's client at the simulator's identity provider (a simulator fixture).
#[cfg(feature = "demo")]
pub const SIM_GATEWAY_CLIENT_ID: &str = "layer-mcp-gateway";

/// Starts the authorization server the OAuth settings (`config.oauth`) describe, or `None`
/// when OAuth is not configured (`oauth_idp_client_id` absent): then only PATs work.
///
/// The store is `--store` when given; otherwise the shared `redis_url` when there is one (N
/// replicas each with a private SQLite file would break logins: a code issued by one would
/// be unknown to the next), else SQLite in the data directory.
pub async fn start_auth_server(config: &Config) -> anyhow::Result<Option<AuthServer>> {
    let args = &config.oauth;
    if !args.enabled() {
        return Ok(None);
    }
    // Before `to_config`, which would generate a key file in the data directory.
    let store_url = oauth_store_url(config, args)?;
    let Some(auth_config) = args
        .to_config(&config.public_url)
        .map_err(|e| anyhow::anyhow!("OAuth settings: {e}"))?
    else {
        return Ok(None);
    };
    let store = open_store_with_tls(store_url.as_deref(), &args.data_dir(), &config.redis_tls())
        .map_err(|e| anyhow::anyhow!("setting `store`: {e}"))?;
    let kind = store.kind();
    let server = AuthServer::start(auth_config, store)
        .await
        .map_err(|e| anyhow::anyhow!("OAuth ({kind} store): {e}"))?;
    tracing::info!(issuer = %server.config().issuer(), store = kind, "OAuth login enabled");
    Ok(Some(server))
}

/// Where OAuth state lives (see [`start_auth_server`]). A Redis store is shared by replicas,
/// so every one of them must seal and open Layer tokens and signing keys with the same
/// key: it must be configured, not generated per data directory. (Keeping it in that same
/// Redis would put the key next to what it protects.)
fn oauth_store_url(config: &Config, args: &OAuthSettings) -> anyhow::Result<Option<String>> {
    let url = args
        .store
        .as_ref()
        .map(|s| s.expose_secret().to_owned())
        .or_else(|| config.redis_url.as_ref().map(|u| u.expose().to_owned()));
    if url.as_deref().is_some_and(is_redis_url) && args.oauth_encryption_key.is_none() {
        anyhow::bail!(
            "setting `oauth_encryption_key`: OAuth state is kept in Redis, shared by every \
             replica, so each needs the same encryption key: set --oauth-encryption-key \
             (LAYER_MCP_OAUTH_ENCRYPTION_KEY) to 32 random bytes in base64 or hex \
             (e.g. `openssl rand -base64 32`) on every replica"
        );
    }
    Ok(url)
}

/// The authorization server for `demo`: logs users in at the simulator's identity provider,
/// keeps its state in memory (the simulator's logins do not outlive the demo either).
#[cfg(feature = "demo")]
pub async fn demo_auth_server(sim: &RunningSim, public_url: &Url) -> anyhow::Result<AuthServer> {
    let client = sim
        .fixtures()
        .oauth_client(SIM_GATEWAY_CLIENT_ID)
        .ok_or_else(|| {
            anyhow::anyhow!("the simulator has no OAuth client {SIM_GATEWAY_CLIENT_ID}")
        })?;
    let secret = client.client_secret.as_ref().ok_or_else(|| {
        anyhow::anyhow!("the simulator's {SIM_GATEWAY_CLIENT_ID} client has no secret")
    })?;
    let idp = IdpConfig {
        issuer: Url::parse(&sim.issuer())?,
        client_id: client.client_id.clone(),
        client_secret: secret.clone(),
        audience: Some(sim.fixtures().api_audience.clone()),
        scopes: vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "offline_access".into(),
        ],
    };
    let config = AuthConfig::new(public_url.clone(), idp, EncryptionKey::generate())?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory()?);
    Ok(AuthServer::start(config, store).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use url::Url;

    fn config(redis_url: Option<&str>) -> Config {
        let mut config = Config::for_local(
            "127.0.0.1:8080".parse().unwrap(),
            Url::parse("http://127.0.0.1:9").unwrap(),
        );
        config.redis_url = redis_url.map(|u| u.parse().unwrap());
        config
    }

    fn args(store: Option<&str>, key: bool) -> OAuthSettings {
        OAuthSettings {
            oauth_idp_client_id: Some("gw".into()),
            store: store.map(SecretString::from),
            oauth_encryption_key: key.then(|| SecretString::from("ab".repeat(32))),
            ..OAuthSettings::default()
        }
    }

    #[test]
    fn the_shared_redis_holds_oauth_state_unless_store_says_otherwise() {
        let redis = "redis://:hunter2@redis.internal:6379/0";
        let with_redis = config(Some(redis));
        assert_eq!(
            oauth_store_url(&with_redis, &args(None, true))
                .ok()
                .flatten(),
            Some(redis.to_owned())
        );
        assert_eq!(
            oauth_store_url(&with_redis, &args(Some("sqlite://auth.db"), false))
                .ok()
                .flatten(),
            Some("sqlite://auth.db".to_owned()),
            "--store wins"
        );
        assert_eq!(
            oauth_store_url(&config(None), &args(None, false))
                .ok()
                .flatten(),
            None,
            "SQLite in the data directory"
        );
    }

    #[test]
    fn a_redis_store_needs_a_configured_encryption_key() {
        for (config, args) in [
            (config(Some("redis://:hunter2@r:6379")), args(None, false)),
            (config(None), args(Some("redis://:hunter2@r:6379"), false)),
        ] {
            let Err(e) = oauth_store_url(&config, &args) else {
                panic!("accepted without a key")
            };
            let text = e.to_string();
            assert!(
                text.contains("--oauth-encryption-key")
                    && text.contains("LAYER_MCP_OAUTH_ENCRYPTION_KEY")
                    && !text.contains("hunter2"),
                "{text}"
            );
        }
    }
}
