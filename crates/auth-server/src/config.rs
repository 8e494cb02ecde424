//! Configuration of the authorization server, and its settings ([`OAuthSettings`]), which the
//! gateway loads with its own (TOML file, `LAYER_MCP_*` variables, flags).

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
    /// A configuration with the defaults ([`OAuthSettings::default`]'s lifetimes and
    /// registrations; consent 10 min, unused clients 30 days).
    pub fn new(
        public_url: Url,
        idp: IdpConfig,
        encryption_key: EncryptionKey,
    ) -> Result<Self, ConfigError> {
        let origin = normalise_origin(&public_url)?;
        let settings = OAuthSettings::default();
        Ok(Self {
            public_url: origin,
            resource_path: "/mcp".into(),
            idp,
            encryption_key,
            access_token_ttl: Duration::from_secs(settings.oauth_access_token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(settings.oauth_refresh_token_ttl_secs),
            refresh_grace: Duration::from_secs(settings.oauth_refresh_grace_secs),
            code_ttl: Duration::from_secs(settings.oauth_code_ttl_secs),
            consent_ttl: Duration::from_secs(600),
            client_unused_ttl: Duration::from_secs(30 * 24 * 3600),
            registrations_per_window: settings.oauth_registrations_per_minute,
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

/// The OAuth login settings, one field per setting: its doc comment is the reference text
/// (`docs/operations.md`, `layer-mcp-gateway settings`), its serde name the TOML key (and, upper
/// case with `LAYER_MCP_`, the environment variable), and `x-flag` its `serve` flag. The gateway
/// loads it with its own settings. OAuth is on when `oauth_idp_client_id` is set.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
pub struct OAuthSettings {
    /// Issuer URL of Layer's identity provider (discovery is read from it).
    #[schemars(
        with = "Option<String>",
        extend("x-flag" = "--oauth-idp-issuer", "x-default" = "required with OAuth")
    )]
    pub oauth_idp_issuer: Option<Url>,
    /// The gateway's client at the provider; turns OAuth on. Register
    /// `<public_url>/oauth/layer/callback` there.
    #[schemars(extend("x-flag" = "--oauth-idp-client-id", "x-default" = "off"))]
    pub oauth_idp_client_id: Option<String>,
    /// That client's secret.
    #[serde(skip_serializing)]
    #[schemars(
        with = "Option<String>",
        extend(
            "x-flag" = "--oauth-idp-client-secret",
            "x-secret" = true,
            "x-default" = "required with OAuth"
        )
    )]
    pub oauth_idp_client_secret: Option<SecretString>,
    /// The API audience asked of the provider.
    #[schemars(extend("x-flag" = "--oauth-idp-audience", "x-default" = "none sent"))]
    pub oauth_idp_audience: Option<String>,
    /// AES-256-GCM key, 32 bytes in base64 or hex, sealing Layer tokens and signing keys at
    /// rest. Every replica must have the same one: always set it when running more than one
    /// (required with a Redis store).
    #[serde(skip_serializing)]
    #[schemars(
        with = "Option<String>",
        extend(
            "x-flag" = "--oauth-encryption-key",
            "x-secret" = true,
            "x-default" = "generated into `<data dir>/oauth-encryption.key`"
        )
    )]
    pub oauth_encryption_key: Option<SecretString>,
    /// Where OAuth state lives: `sqlite://PATH` (one replica) or a Redis URL shared by every
    /// replica (`redis://[:PASSWORD@]HOST[:PORT][/DB]`, also `rediss://`, `redis+unix://`,
    /// `unix://`; the encryption key is then required). The manifests set it explicitly to the
    /// Secret's `redis-url`.
    #[serde(skip_serializing)]
    #[schemars(
        with = "Option<String>",
        extend(
            "x-flag" = "--store",
            "x-secret" = true,
            "x-default" = "the `redis_url` when there is one, else `sqlite://<data dir>/auth.sqlite3`"
        )
    )]
    pub store: Option<SecretString>,
    /// Where the SQLite store and a generated key live.
    #[schemars(extend("x-flag" = "--data-dir", "x-default" = "`./data` (the image: `/data`)"))]
    pub data_dir: PathBuf,
    /// Access token lifetime, seconds.
    #[schemars(extend(
        "x-flag" = "--oauth-access-token-ttl-secs",
        "x-flag-aliases" = ["--oauth-access-token-ttl"],
        "x-env-aliases" = ["LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL"]
    ))]
    pub oauth_access_token_ttl_secs: u64,
    /// Refresh token lifetime, seconds (2592000: 30 days); each rotation starts it again.
    #[schemars(extend(
        "x-flag" = "--oauth-refresh-token-ttl-secs",
        "x-flag-aliases" = ["--oauth-refresh-token-ttl"],
        "x-env-aliases" = ["LAYER_MCP_OAUTH_REFRESH_TOKEN_TTL"]
    ))]
    pub oauth_refresh_token_ttl_secs: u64,
    /// Seconds a rotated refresh token still works (concurrent refreshes).
    #[schemars(extend(
        "x-flag" = "--oauth-refresh-grace-secs",
        "x-flag-aliases" = ["--oauth-refresh-grace"],
        "x-env-aliases" = ["LAYER_MCP_OAUTH_REFRESH_GRACE"]
    ))]
    pub oauth_refresh_grace_secs: u64,
    /// Authorization code lifetime, seconds.
    #[schemars(extend(
        "x-flag" = "--oauth-code-ttl-secs",
        "x-flag-aliases" = ["--oauth-code-ttl"],
        "x-env-aliases" = ["LAYER_MCP_OAUTH_CODE_TTL"]
    ))]
    pub oauth_code_ttl_secs: u64,
    /// Client registrations per source address per minute.
    #[schemars(extend("x-flag" = "--oauth-registrations-per-minute"))]
    pub oauth_registrations_per_minute: u32,
    /// Take the client address from `X-Forwarded-For` (only when every request comes through
    /// your proxy).
    #[schemars(extend("x-flag" = "--trust-forwarded-for"))]
    pub trust_forwarded_for: bool,
}

impl Default for OAuthSettings {
    /// The product's defaults: access 1 h, refresh 30 days, grace 30 s, code 60 s, 20
    /// registrations per address per minute; OAuth off.
    fn default() -> Self {
        Self {
            oauth_idp_issuer: None,
            oauth_idp_client_id: None,
            oauth_idp_client_secret: None,
            oauth_idp_audience: None,
            oauth_encryption_key: None,
            store: None,
            data_dir: PathBuf::from("data"),
            oauth_access_token_ttl_secs: 3600,
            oauth_refresh_token_ttl_secs: 30 * 24 * 3600,
            oauth_refresh_grace_secs: 30,
            oauth_code_ttl_secs: 60,
            oauth_registrations_per_minute: 20,
            trust_forwarded_for: false,
        }
    }
}

impl OAuthSettings {
    /// Whether OAuth login is configured.
    pub fn enabled(&self) -> bool {
        self.oauth_idp_client_id.is_some()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    /// Checks the settings OAuth needs once it is on; the error names the setting (and never
    /// repeats a secret). Nothing is checked while OAuth is off.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled() {
            return Ok(());
        }
        if self.oauth_idp_issuer.is_none() {
            return Err((
                "oauth_idp_issuer",
                "--oauth-idp-issuer (LAYER_MCP_OAUTH_IDP_ISSUER) is required with --oauth-idp-client-id"
                    .into(),
            ));
        }
        if self.oauth_idp_client_secret.is_none() {
            return Err((
                "oauth_idp_client_secret",
                "--oauth-idp-client-secret (LAYER_MCP_OAUTH_IDP_CLIENT_SECRET) is required with --oauth-idp-client-id"
                    .into(),
            ));
        }
        if let Some(text) = &self.oauth_encryption_key {
            EncryptionKey::parse(text.expose_secret()).map_err(|e| {
                (
                    "oauth_encryption_key",
                    format!("--oauth-encryption-key: {e}"),
                )
            })?;
        }
        let lifetimes = [
            (
                "oauth_access_token_ttl_secs",
                self.oauth_access_token_ttl_secs,
            ),
            (
                "oauth_refresh_token_ttl_secs",
                self.oauth_refresh_token_ttl_secs,
            ),
            ("oauth_code_ttl_secs", self.oauth_code_ttl_secs),
        ];
        for (name, secs) in lifetimes {
            if secs == 0 {
                return Err((name, "must be at least 1 second".into()));
            }
        }
        Ok(())
    }

    /// Builds the configuration, or `Ok(None)` when OAuth is not configured.
    pub fn to_config(&self, public_url: &Url) -> Result<Option<AuthConfig>, ConfigError> {
        let Some(client_id) = self.oauth_idp_client_id.clone() else {
            return Ok(None);
        };
        self.validate().map_err(|(setting, message)| {
            ConfigError::Invalid(format!("`{setting}`: {message}"))
        })?;
        let (Some(issuer), Some(secret)) = (
            self.oauth_idp_issuer.clone(),
            self.oauth_idp_client_secret.clone(),
        ) else {
            return Err(ConfigError::Invalid(
                "the identity provider's issuer and client secret are required".into(),
            ));
        };
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
        config.access_token_ttl = Duration::from_secs(self.oauth_access_token_ttl_secs);
        config.refresh_token_ttl = Duration::from_secs(self.oauth_refresh_token_ttl_secs);
        config.code_ttl = Duration::from_secs(self.oauth_code_ttl_secs);
        config.refresh_grace = Duration::from_secs(self.oauth_refresh_grace_secs);
        config.registrations_per_window = self.oauth_registrations_per_minute;
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

    fn enabled() -> OAuthSettings {
        OAuthSettings {
            oauth_idp_issuer: Some(Url::parse("https://login.layer.ai/").unwrap()),
            oauth_idp_client_id: Some("gw".into()),
            oauth_idp_client_secret: Some(SecretString::from("s3cr3t-value")),
            oauth_encryption_key: Some(SecretString::from("ab".repeat(32))),
            ..OAuthSettings::default()
        }
    }

    #[test]
    fn settings_build_a_config_and_debug_hides_secrets() {
        let settings = OAuthSettings {
            oauth_access_token_ttl_secs: 120,
            oauth_refresh_grace_secs: 5,
            ..enabled()
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cr3t-value") && !shown.contains(&"ab".repeat(32)),
            "{shown}"
        );
        let url = Url::parse("https://mcp.example.com").unwrap();
        let config = settings.to_config(&url).unwrap().unwrap();
        assert_eq!(config.access_token_ttl, Duration::from_secs(120));
        assert_eq!(config.refresh_grace, Duration::from_secs(5));
        assert_eq!(config.code_ttl, Duration::from_secs(60));
        assert_eq!(config.resource(), "https://mcp.example.com/mcp");
        assert_eq!(config.issuer(), "https://mcp.example.com");
        assert!(!format!("{config:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn bad_settings_are_named() {
        let url = Url::parse("https://mcp.example.com").unwrap();
        let off = OAuthSettings::default();
        assert!(off.to_config(&url).unwrap().is_none());
        assert!(
            OAuthSettings {
                oauth_code_ttl_secs: 0,
                ..OAuthSettings::default()
            }
            .validate()
            .is_ok(),
            "nothing is checked while OAuth is off"
        );
        let no_issuer = OAuthSettings {
            oauth_idp_issuer: None,
            ..enabled()
        };
        assert_eq!(no_issuer.validate().unwrap_err().0, "oauth_idp_issuer");
        let e = no_issuer.to_config(&url).unwrap_err().to_string();
        assert!(e.contains("--oauth-idp-issuer"), "{e}");
        let bad_key = OAuthSettings {
            oauth_encryption_key: Some(SecretString::from("short")),
            ..enabled()
        };
        let (setting, message) = bad_key.validate().unwrap_err();
        assert_eq!(setting, "oauth_encryption_key");
        assert!(!message.contains("short"), "{message}");
        let e = bad_key.to_config(&url).unwrap_err().to_string();
        assert!(
            e.contains("--oauth-encryption-key") && !e.contains("short"),
            "{e}"
        );
        let zero = OAuthSettings {
            oauth_access_token_ttl_secs: 0,
            ..enabled()
        };
        assert_eq!(
            zero.validate().unwrap_err(),
            (
                "oauth_access_token_ttl_secs",
                "must be at least 1 second".to_owned()
            )
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
