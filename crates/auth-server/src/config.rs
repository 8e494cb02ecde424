//! Configuration of the authorization server, and the command-line flags (with
//! `LAYER_MCP_*` environment variables) the gateway flattens into its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::clients::{ClientMetadataFetcher, SafeMetadataFetcher};
use crate::crypto::EncryptionKey;
use secrecy::{ExposeSecret, SecretString};

/// The one scope: full use of the user's Layer account through the gateway's tools.
pub const SCOPE: &str = "layer";

/// The identity provider the gateway logs users in at (Layer's, Auth0-shaped).
#[derive(Clone, Debug)]
pub struct IdpConfig {
    /// Its issuer (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: Url,
    /// The gateway's own confidential client at the IdP.
    pub client_id: String,
    pub client_secret: SecretString,
    /// The API audience to ask for (Auth0's `audience` parameter), e.g. `https://api.layer.ai/`.
    pub audience: Option<String>,
    /// Scopes asked of the IdP; `offline_access` is what yields a refresh token.
    pub scopes: Vec<String>,
}

/// Everything the authorization server needs.
#[derive(Clone)]
pub struct AuthConfig {
    /// The public origin (scheme, host, port): the issuer and the base of every endpoint.
    pub public_url: Url,
    /// The protected MCP endpoint's path; the canonical resource is origin + this.
    pub resource_path: String,
    pub idp: IdpConfig,
    pub encryption_key: EncryptionKey,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token keeps working (concurrent refreshes).
    pub refresh_grace: Duration,
    pub code_ttl: Duration,
    /// How long the consent page and the upstream login may take.
    pub consent_ttl: Duration,
    /// A dynamically registered client unused this long (and with no live grant) is removed.
    pub client_unused_ttl: Duration,
    /// Registrations allowed per source address per `registration_window`.
    pub registrations_per_window: u32,
    pub registration_window: Duration,
    /// How long a fetched Client ID Metadata Document is trusted.
    pub metadata_document_ttl: Duration,
    /// Fetches Client ID Metadata Documents (SSRF-guarded).
    pub metadata_fetcher: Arc<dyn ClientMetadataFetcher>,
    /// Use the first `X-Forwarded-For` address as the source address (behind a proxy).
    pub trust_forwarded_for: bool,
    /// Refresh Layer's access token this long before it expires.
    pub upstream_refresh_margin: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("public_url", &self.public_url.as_str())
            .field("idp", &self.idp)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("refresh_grace", &self.refresh_grace)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("public URL {0:?} must be an http(s) origin with no path, query or fragment")]
    PublicUrl(String),
    #[error("{0}")]
    Invalid(String),
}

impl AuthConfig {
    /// A configuration with the defaults (access 1 h, refresh 30 days, grace 30 s, code 60 s,
    /// consent 10 min, unused clients 30 days, 20 registrations per address per minute).
    pub fn new(
        public_url: Url,
        idp: IdpConfig,
        encryption_key: EncryptionKey,
    ) -> Result<Self, ConfigError> {
        let origin = normalise_origin(&public_url)?;
        Ok(Self {
            public_url: origin,
            resource_path: "/mcp".into(),
            idp,
            encryption_key,
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(30),
            code_ttl: Duration::from_secs(60),
            consent_ttl: Duration::from_secs(600),
            client_unused_ttl: Duration::from_secs(30 * 24 * 3600),
            registrations_per_window: 20,
            registration_window: Duration::from_secs(60),
            metadata_document_ttl: Duration::from_secs(3600),
            metadata_fetcher: Arc::new(SafeMetadataFetcher::default()),
            trust_forwarded_for: false,
            upstream_refresh_margin: Duration::from_secs(60),
        })
    }

    /// The issuer: the public origin without a trailing slash.
    pub fn issuer(&self) -> String {
        self.public_url.as_str().trim_end_matches('/').to_owned()
    }

    /// `<issuer><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// The canonical resource: `https://host/mcp`.
    pub fn resource(&self) -> String {
        self.url(&self.resource_path)
    }

    /// Whether the public URL allows `Secure`/`__Host-` cookies in browsers: https, or a
    /// loopback host (browsers treat `http://localhost` and `http://127.0.0.1` as secure).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https" || is_loopback_host(&self.public_url)
    }
}

fn normalise_origin(url: &Url) -> Result<Url, ConfigError> {
    let bad = || ConfigError::PublicUrl(url.to_string());
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.path() != "/"
    {
        return Err(bad());
    }
    Ok(url.clone())
}

/// `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The environment variables [`OAuthArgs`] reads (the gateway's own settings loader must
/// leave them alone).
pub const ENV_VARS: &[&str] = &[
    "LAYER_MCP_OAUTH_IDP_ISSUER",
    "LAYER_MCP_OAUTH_IDP_CLIENT_ID",
    "LAYER_MCP_OAUTH_IDP_CLIENT_SECRET",
    "LAYER_MCP_OAUTH_IDP_AUDIENCE",
    "LAYER_MCP_OAUTH_ENCRYPTION_KEY",
    "LAYER_MCP_STORE",
    "LAYER_MCP_DATA_DIR",
    "LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL",
    "LAYER_MCP_OAUTH_REFRESH_TOKEN_TTL",
    "LAYER_MCP_OAUTH_REFRESH_GRACE",
    "LAYER_MCP_OAUTH_CODE_TTL",
    "LAYER_MCP_OAUTH_REGISTRATIONS_PER_MINUTE",
    "LAYER_MCP_TRUST_FORWARDED_FOR",
];

/// The OAuth flags. OAuth is on when `--oauth-idp-client-id` is given.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct OAuthArgs {
    /// Issuer URL of Layer's identity provider (OIDC discovery is read from it).
    #[arg(long, env = "LAYER_MCP_OAUTH_IDP_ISSUER")]
    pub oauth_idp_issuer: Option<Url>,
    /// The gateway's client id at the identity provider; enables OAuth login.
    #[arg(long, env = "LAYER_MCP_OAUTH_IDP_CLIENT_ID")]
    pub oauth_idp_client_id: Option<String>,
    /// The gateway's client secret at the identity provider.
    #[arg(
        long,
        env = "LAYER_MCP_OAUTH_IDP_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oauth_idp_client_secret: Option<SecretString>,
    /// The API audience requested at the identity provider.
    #[arg(long, env = "LAYER_MCP_OAUTH_IDP_AUDIENCE")]
    pub oauth_idp_audience: Option<String>,
    /// AES-256-GCM key (32 bytes, base64 or hex) sealing Layer tokens and signing keys at
    /// rest. Without it, a key is generated once into `<data dir>/oauth-encryption.key`;
    /// required with a Redis store (every replica must use the same key).
    #[arg(long, env = "LAYER_MCP_OAUTH_ENCRYPTION_KEY", hide_env_values = true)]
    pub oauth_encryption_key: Option<SecretString>,
    /// Where OAuth state lives: `sqlite://PATH` (one gateway; default
    /// `<data dir>/auth.sqlite3`) or `redis://[:PASSWORD@]HOST[:PORT][/DB]` (also `rediss://`,
    /// `redis+unix://`, `unix://`), shared by every replica. The gateway uses its `redis_url`
    /// when this is not given.
    #[arg(long = "store", env = "LAYER_MCP_STORE")]
    pub store: Option<String>,
    /// Data directory (default `./data`).
    #[arg(long, env = "LAYER_MCP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Access token lifetime in seconds (default 3600).
    #[arg(long, env = "LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL")]
    pub oauth_access_token_ttl: Option<u64>,
    /// Refresh token lifetime in seconds (default 30 days; each rotation starts it again).
    #[arg(long, env = "LAYER_MCP_OAUTH_REFRESH_TOKEN_TTL")]
    pub oauth_refresh_token_ttl: Option<u64>,
    /// Seconds a rotated refresh token still works (default 30).
    #[arg(long, env = "LAYER_MCP_OAUTH_REFRESH_GRACE")]
    pub oauth_refresh_grace: Option<u64>,
    /// Authorization code lifetime in seconds (default 60).
    #[arg(long, env = "LAYER_MCP_OAUTH_CODE_TTL")]
    pub oauth_code_ttl: Option<u64>,
    /// Client registrations allowed per source address per minute (default 20).
    #[arg(long, env = "LAYER_MCP_OAUTH_REGISTRATIONS_PER_MINUTE")]
    pub oauth_registrations_per_minute: Option<u32>,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    #[arg(long, env = "LAYER_MCP_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

impl OAuthArgs {
    /// Whether OAuth login is configured.
    pub fn enabled(&self) -> bool {
        self.oauth_idp_client_id.is_some()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("data"))
    }

    /// Builds the configuration, or `Ok(None)` when OAuth is not configured.
    pub fn to_config(&self, public_url: &Url) -> Result<Option<AuthConfig>, ConfigError> {
        let Some(client_id) = self.oauth_idp_client_id.clone() else {
            return Ok(None);
        };
        let issuer = self.oauth_idp_issuer.clone().ok_or_else(|| {
            ConfigError::Invalid("--oauth-idp-issuer is required with --oauth-idp-client-id".into())
        })?;
        let secret = self.oauth_idp_client_secret.clone().ok_or_else(|| {
            ConfigError::Invalid(
                "--oauth-idp-client-secret is required with --oauth-idp-client-id".into(),
            )
        })?;
        let key = match &self.oauth_encryption_key {
            Some(text) => EncryptionKey::parse(text.expose_secret())
                .map_err(|e| ConfigError::Invalid(format!("--oauth-encryption-key: {e}")))?,
            None => load_or_create_key(&self.data_dir())?,
        };
        let idp = IdpConfig {
            issuer,
            client_id,
            client_secret: secret,
            audience: self.oauth_idp_audience.clone(),
            scopes: vec![
                "openid".into(),
                "profile".into(),
                "email".into(),
                "offline_access".into(),
            ],
        };
        let mut config = AuthConfig::new(public_url.clone(), idp, key)?;
        let secs = |v: Option<u64>, name: &str, default: Duration| match v {
            Some(0) => Err(ConfigError::Invalid(format!(
                "{name} must be at least 1 second"
            ))),
            Some(s) => Ok(Duration::from_secs(s)),
            None => Ok(default),
        };
        config.access_token_ttl = secs(
            self.oauth_access_token_ttl,
            "--oauth-access-token-ttl",
            config.access_token_ttl,
        )?;
        config.refresh_token_ttl = secs(
            self.oauth_refresh_token_ttl,
            "--oauth-refresh-token-ttl",
            config.refresh_token_ttl,
        )?;
        config.code_ttl = secs(self.oauth_code_ttl, "--oauth-code-ttl", config.code_ttl)?;
        if let Some(grace) = self.oauth_refresh_grace {
            config.refresh_grace = Duration::from_secs(grace);
        }
        if let Some(n) = self.oauth_registrations_per_minute {
            config.registrations_per_window = n;
        }
        config.trust_forwarded_for = self.trust_forwarded_for;
        Ok(Some(config))
    }
}

/// Reads `<dir>/oauth-encryption.key`, creating it (mode 0600) with a fresh key if absent.
pub fn load_or_create_key(dir: &std::path::Path) -> Result<EncryptionKey, ConfigError> {
    let path = dir.join("oauth-encryption.key");
    let fail = |what: &str, e: std::io::Error| {
        ConfigError::Invalid(format!("{what} {}: {e}", path.display()))
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => EncryptionKey::parse(&text)
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the directory of", e))?;
            let key = EncryptionKey::generate();
            write_private(&path, key.to_base64().as_bytes())
                .map_err(|e| fail("cannot write", e))?;
            tracing::warn!(
                path = %path.display(),
                "generated an OAuth encryption key; set --oauth-encryption-key in production"
            );
            Ok(key)
        }
        Err(e) => Err(fail("cannot read", e)),
    }
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        oauth: OAuthArgs,
    }

    #[test]
    fn flags_build_a_config_and_debug_hides_secrets() {
        let cli = Cli::parse_from([
            "x",
            "--oauth-idp-issuer",
            "https://login.layer.ai/",
            "--oauth-idp-client-id",
            "gw",
            "--oauth-idp-client-secret",
            "s3cr3t-value",
            "--oauth-encryption-key",
            &"ab".repeat(32),
            "--oauth-access-token-ttl",
            "120",
            "--oauth-refresh-grace",
            "5",
        ]);
        let shown = format!("{:?}", cli.oauth);
        assert!(
            !shown.contains("s3cr3t-value") && !shown.contains(&"ab".repeat(32)),
            "{shown}"
        );
        let url = Url::parse("https://mcp.example.com").unwrap();
        let config = cli.oauth.to_config(&url).unwrap().unwrap();
        assert_eq!(config.access_token_ttl, Duration::from_secs(120));
        assert_eq!(config.refresh_grace, Duration::from_secs(5));
        assert_eq!(config.resource(), "https://mcp.example.com/mcp");
        assert_eq!(config.issuer(), "https://mcp.example.com");
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn bad_settings_are_named() {
        let url = Url::parse("https://mcp.example.com").unwrap();
        let off = Cli::parse_from(["x"]);
        assert!(off.oauth.to_config(&url).unwrap().is_none());
        let no_issuer = Cli::parse_from(["x", "--oauth-idp-client-id", "gw"]);
        let e = no_issuer.oauth.to_config(&url).unwrap_err().to_string();
        assert!(e.contains("--oauth-idp-issuer"), "{e}");
        let bad_key = Cli::parse_from([
            "x",
            "--oauth-idp-client-id",
            "gw",
            "--oauth-idp-issuer",
            "https://i/",
            "--oauth-idp-client-secret",
            "s",
            "--oauth-encryption-key",
            "short",
        ]);
        let e = bad_key.oauth.to_config(&url).unwrap_err().to_string();
        assert!(
            e.contains("--oauth-encryption-key") && !e.contains("short"),
            "{e}"
        );
        assert!(
            AuthConfig::new(
                Url::parse("https://mcp.example.com/mcp").unwrap(),
                no_issuer_idp(),
                EncryptionKey::generate()
            )
            .is_err(),
            "a public URL with a path is refused"
        );
    }

    fn no_issuer_idp() -> IdpConfig {
        IdpConfig {
            issuer: Url::parse("https://i/").unwrap(),
            client_id: "gw".into(),
            client_secret: SecretString::from("s"),
            audience: None,
            scopes: vec![],
        }
    }
}
