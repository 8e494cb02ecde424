//! Wiring of the OAuth authorization server (crate `auth-server`, issue 4) into the gateway:
//! from the `serve` flags, and against the in-process simulator for `demo`.

use std::sync::Arc;

use auth_server::config::{AuthConfig, IdpConfig};
use auth_server::crypto::EncryptionKey;
use auth_server::store::SqliteStore;
use auth_server::{AuthServer, OAuthArgs, Secret, Store, open_store};
use layer_sim::RunningSim;
use url::Url;

use crate::config::Config;

/// The gateway's client at the simulator's identity provider (a simulator fixture).
pub const SIM_GATEWAY_CLIENT_ID: &str = "layer-mcp-gateway";

/// Starts the authorization server the `serve` flags describe, or `None` when OAuth is not
/// configured (`--oauth-idp-client-id` absent): then only PATs work.
pub async fn start_auth_server(
    config: &Config,
    args: &OAuthArgs,
) -> anyhow::Result<Option<AuthServer>> {
    let Some(auth_config) = args
        .to_config(&config.public_url)
        .map_err(|e| anyhow::anyhow!("OAuth settings: {e}"))?
    else {
        return Ok(None);
    };
    let store = open_store(args.store.as_deref(), &args.data_dir())
        .map_err(|e| anyhow::anyhow!("setting `store`: {e}"))?;
    let server = AuthServer::start(auth_config, store).await?;
    tracing::info!(issuer = %server.config().issuer(), "OAuth login enabled");
    Ok(Some(server))
}

/// The authorization server for `demo`: logs users in at the simulator's identity provider,
/// keeps its state in memory (the simulator's logins do not outlive the demo either).
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
        client_secret: Secret::new(secret.expose()),
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
