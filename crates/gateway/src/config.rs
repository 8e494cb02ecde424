//! The gateway's settings ([`Config`]): one field per setting, whose doc comment is its entry
//! in the configuration reference (`docs/operations.md`, `layer-mcp-gateway settings`) and
//! whose serde name is its TOML key and, upper case after `LAYER_MCP_`, its environment
//! variable; `x-flag` names its `serve` flag. [`crate::settings`] loads them in layers
//! (defaults, TOML file, environment, flags) and names the bad setting and its source when one
//! is wrong; [`Config::validate`] holds the rules that span several settings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use auth_server::OAuthSettings;
pub use redis_conn::RedisUrl;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::caps::CapsConfig;
pub use crate::settings::Flags;
use crate::settings::{list, secs, text};

/// Layer's production v1 API, the default upstream.
pub const DEFAULT_LAYER_API_URL: &str = "https://api.app.layer.ai/api/v1";
/// Where `serve` and `demo` listen unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Prefix of every environment variable the gateway reads.
pub const ENV_PREFIX: &str = "LAYER_MCP_";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "pretty" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("must be `text` or `json`".to_owned()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Every setting of a running gateway, validated. Build it with [`Config::load`] (the binary)
/// or start from [`Config::for_local`] (tests, the demo) and adjust fields.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Config {
    /// Socket address to listen on.
    #[serde(with = "text")]
    #[schemars(
        with = "String",
        extend(
            "x-flag" = "--listen",
            "x-default" = "`127.0.0.1:8080` (the image: `0.0.0.0:8080`)"
        )
    )]
    pub listen: SocketAddr,
    /// Origin clients use (`https://mcp.example.com`, no path); the MCP endpoint is
    /// `<public_url>/mcp`, the OAuth issuer is this origin, the Host and Origin allow-lists
    /// follow it.
    #[schemars(
        with = "String",
        extend("x-flag" = "--public-url", "x-default" = "`http://<listen>`")
    )]
    pub public_url: Url,
    /// Further `Host` values `/mcp` accepts besides the public URL's host (e.g. an internal
    /// name a proxy or the load balancer's health checks send).
    #[serde(rename = "allowed_hosts", with = "list")]
    #[schemars(with = "Vec<String>")]
    pub extra_allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp` (`https://host[:port]`, `:*` for any port,
    /// `null`); a request without `Origin` is always fine, one with any other origin gets 403.
    #[serde(with = "list")]
    #[schemars(with = "Vec<String>", extend("x-default" = "the public URL's origin"))]
    pub allowed_origins: Vec<String>,
    /// Layer's v1 API.
    #[schemars(with = "String", extend("x-flag" = "--layer-api-url"))]
    pub layer_api_url: Url,
    /// Longest wait for a connection to Layer.
    #[serde(rename = "upstream_connect_timeout_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub upstream_connect_timeout: Duration,
    /// Longest wait for one Layer call, response included.
    #[serde(rename = "upstream_request_timeout_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub upstream_request_timeout: Duration,
    /// Attempts per Layer call where a retry is safe (the first included).
    pub upstream_max_attempts: u32,
    /// How long a PAT Layer accepted is trusted without asking again (a revoked PAT works at
    /// most this long).
    #[serde(rename = "pat_cache_ttl_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub pat_cache_ttl: Duration,
    /// An MCP session unused this long is closed.
    #[serde(rename = "session_idle_timeout_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub session_idle_timeout: Duration,
    /// Open MCP sessions per user; opening another closes their least recently used.
    pub max_sessions_per_user: usize,
    /// Largest POST body on `/mcp` (413 beyond).
    pub max_request_body_bytes: usize,
    /// Interval of SSE keep-alive comments (keep it below every proxy's idle timeout).
    #[serde(rename = "sse_keep_alive_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub sse_keep_alive: Duration,
    /// Streams of the older HTTP+SSE transport per user per replica; opening another closes
    /// their oldest.
    pub legacy_sse_streams_per_user: usize,
    /// Streams of the older HTTP+SSE transport per replica (503 beyond).
    pub legacy_sse_max_streams: usize,
    /// After SIGTERM: stop accepting, close standalone SSE streams (clients resume
    /// elsewhere), let calls in flight finish, and close the streams anyway after this long;
    /// keep the orchestrator's grace period longer.
    #[serde(rename = "shutdown_drain_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub shutdown_drain: Duration,
    /// `upload_file`: largest download.
    pub upload_max_bytes: u64,
    /// `upload_file`: time limit of a download.
    #[serde(rename = "upload_timeout_secs", with = "secs")]
    #[schemars(with = "u64")]
    pub upload_timeout: Duration,
    /// `upload_file`: redirects followed at most.
    pub upload_max_redirects: u32,
    /// Hosts (`host` or `host:port`) `upload_file` may fetch from despite a private address:
    /// tests and demos only.
    #[serde(with = "list")]
    #[schemars(with = "Vec<String>")]
    pub upload_allow_hosts: Vec<String>,
    /// `text` or `json`.
    #[serde(with = "text")]
    #[schemars(with = "String", extend("x-default" = "`text` (the image: `json`)"))]
    pub log_format: LogFormat,
    /// The Redis every replica shares: `redis://:PASSWORD@host:6379/0`, `rediss://…` (TLS)
    /// or `unix://…`. MCP sessions (any replica continues them), their SSE events
    /// (`Last-Event-ID` resumes anywhere), which user owns each session, the PAT cache, the
    /// OAuth store (unless `store` names another) and the old transport's streams live there;
    /// the caps are counted in it unless `limiter` says otherwise.
    #[serde(with = "text::option")]
    #[schemars(
        with = "Option<String>",
        extend("x-flag" = "--redis-url", "x-secret" = true)
    )]
    pub redis_url: Option<RedisUrl>,
    /// PEM file of a private CA that signed the Redis server's certificate, for every
    /// `rediss://` connection (`redis_url`, a `limiter` URL, the OAuth `store`). Managed
    /// services (ElastiCache, Memorystore, Upstash, Azure) with public certificates need none;
    /// with a private CA, mount it (e.g. from a ConfigMap) and point this at it. Without the
    /// right CA the gateway starts, but `/readyz` reports the Redis users unreachable and
    /// their calls fail with "certificate not trusted".
    #[schemars(extend("x-default" = "none: the system's roots"))]
    pub redis_ca_file: Option<PathBuf>,
    /// The per-user caps (active runs, calls in flight) and where they are counted; their
    /// settings are read from the same layers.
    #[serde(skip)]
    pub caps: CapsConfig,
    /// OAuth login (off unless `oauth_idp_client_id` is set); read from the same layers.
    #[serde(skip)]
    pub oauth: OAuthSettings,
    /// Things worth a warning at start that do not stop it (e.g. an unknown `LAYER_MCP_*`
    /// variable: the prefix is shared with tooling, so it cannot be an error).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The names of the loopback host, as a `Host` header carries them.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Whether a URL's host (`Url::host_str`, IPv6 in brackets) is this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl Default for Config {
    /// The built-in defaults: [`DEFAULT_LISTEN`] and [`DEFAULT_LAYER_API_URL`].
    fn default() -> Self {
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 8080));
        let api = Url::parse(DEFAULT_LAYER_API_URL).unwrap_or_else(|_| fallback_url());
        Self::for_local(listen, api)
    }
}

impl Config {
    /// Defaults for a gateway on `listen` whose public URL is `http://<listen>`, talking to
    /// `layer_api_url`. Tests and the demo start here.
    pub fn for_local(listen: SocketAddr, layer_api_url: Url) -> Self {
        let public_url = loopback_url(listen);
        Self {
            listen,
            allowed_origins: vec![origin_of(&public_url)],
            public_url,
            extra_allowed_hosts: Vec::new(),
            layer_api_url,
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_request_timeout: Duration::from_secs(30),
            upstream_max_attempts: 3,
            pat_cache_ttl: Duration::from_secs(60),
            session_idle_timeout: Duration::from_secs(30 * 60),
            max_sessions_per_user: 16,
            max_request_body_bytes: 1024 * 1024,
            sse_keep_alive: Duration::from_secs(15),
            legacy_sse_streams_per_user: 8,
            legacy_sse_max_streams: 10_000,
            shutdown_drain: Duration::from_secs(10),
            upload_max_bytes: 64 * 1024 * 1024,
            upload_timeout: Duration::from_secs(60),
            upload_max_redirects: 3,
            upload_allow_hosts: Vec::new(),
            log_format: LogFormat::Text,
            redis_url: None,
            redis_ca_file: None,
            caps: CapsConfig::default(),
            oauth: OAuthSettings::default(),
            warnings: Vec::new(),
        }
    }

    /// TLS settings for every `rediss://` connection the gateway makes.
    pub fn redis_tls(&self) -> redis_conn::Tls {
        redis_conn::Tls::with_ca_file(self.redis_ca_file.as_deref())
    }

    /// The MCP endpoint clients are given: `<public_url>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.public_url.as_str().trim_end_matches('/'))
    }

    /// `Host` values the gateway answers to: the public URL's authority (with and without its
    /// port), plus the extra hosts. A loopback public URL also answers to the other loopback
    /// names with its port (`localhost`, `127.0.0.1`, `[::1]`): they are the same host, and a
    /// rebinding page cannot send them (its Host is the attacker's name).
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        if let Some(host) = self.public_url.host_str() {
            hosts.push(host.to_owned());
            if let Some(port) = self.public_url.port() {
                hosts.push(format!("{host}:{port}"));
            }
            if is_loopback_host(host) {
                for alias in LOOPBACK_NAMES {
                    if alias.eq_ignore_ascii_case(host) {
                        continue;
                    }
                    hosts.push(match self.public_url.port() {
                        Some(port) => format!("{alias}:{port}"),
                        None => alias.to_owned(),
                    });
                }
            }
        }
        hosts.extend(self.extra_allowed_hosts.iter().cloned());
        hosts
    }

    /// Reads the file (if any), the environment and the flags, in that order of precedence
    /// (flags win), and validates the result ([`crate::settings::load`]).
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &Flags,
    ) -> Result<Self, ConfigError> {
        crate::settings::load(file, env, flags)
    }

    /// Checks the cross-field rules. [`Config::load`] calls it; call it after editing fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_public_url(&self.public_url)
            .map_err(|m| ConfigError::invalid("public_url", Origin::Built, m))?;
        check_api_url(&self.layer_api_url)
            .map_err(|m| ConfigError::invalid("layer_api_url", Origin::Built, m))?;
        for origin in &self.allowed_origins {
            check_origin(origin)
                .map_err(|m| ConfigError::invalid("allowed_origins", Origin::Built, m))?;
        }
        let positive = [
            ("upstream_max_attempts", self.upstream_max_attempts as u64),
            ("max_sessions_per_user", self.max_sessions_per_user as u64),
            ("max_request_body_bytes", self.max_request_body_bytes as u64),
            (
                "legacy_sse_streams_per_user",
                self.legacy_sse_streams_per_user as u64,
            ),
            ("legacy_sse_max_streams", self.legacy_sse_max_streams as u64),
            ("upload_max_bytes", self.upload_max_bytes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(
                    name,
                    Origin::Built,
                    "must be at least 1".into(),
                ));
            }
        }
        let durations = [
            (
                "upstream_connect_timeout_secs",
                self.upstream_connect_timeout,
            ),
            (
                "upstream_request_timeout_secs",
                self.upstream_request_timeout,
            ),
            ("session_idle_timeout_secs", self.session_idle_timeout),
            ("sse_keep_alive_secs", self.sse_keep_alive),
            ("upload_timeout_secs", self.upload_timeout),
        ];
        for (name, value) in durations {
            if value.is_zero() {
                return Err(ConfigError::invalid(
                    name,
                    Origin::Built,
                    "must be more than 0 seconds".into(),
                ));
            }
        }
        self.caps
            .validate()
            .map_err(|(setting, message)| ConfigError::invalid(setting, Origin::Built, message))?;
        self.oauth
            .validate()
            .map_err(|(setting, message)| ConfigError::invalid(setting, Origin::Built, message))?;
        Ok(())
    }
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
    /// Set in code (tests, `demo`).
    Built,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Built => f.write_str("the configuration"),
        }
    }
}

/// A setting that stops the gateway at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting `{setting}` (from {origin}): {message}")]
    Invalid {
        setting: String,
        origin: Origin,
        message: String,
    },
    #[error("unknown setting `{setting}` in {origin}; known settings: {known}")]
    Unknown {
        setting: String,
        origin: Origin,
        known: String,
    },
    #[error("cannot read config file {path}: {message}")]
    File { path: PathBuf, message: String },
}

impl ConfigError {
    pub(crate) fn invalid(setting: &str, origin: Origin, message: String) -> Self {
        Self::Invalid {
            setting: setting.to_owned(),
            origin,
            message,
        }
    }

    /// The setting at fault, when there is one.
    pub fn setting(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { setting, .. } | ConfigError::Unknown { setting, .. } => {
                Some(setting)
            }
            ConfigError::File { .. } => None,
        }
    }
}

pub(crate) fn loopback_url(listen: SocketAddr) -> Url {
    // A socket address always renders as a valid authority (IPv6 in brackets).
    Url::parse(&format!("http://{listen}")).unwrap_or_else(|_| fallback_url())
}

#[allow(clippy::unwrap_used)] // a constant literal
fn fallback_url() -> Url {
    Url::parse("http://127.0.0.1/").unwrap()
}

/// `scheme://host[:port]` of a URL, as browsers send it in `Origin`.
pub fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// What both the public and the API URL must be: http(s) with a host.
fn check_http_host(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, got scheme `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err("must name a host".into());
    }
    Ok(())
}

fn check_public_url(url: &Url) -> Result<(), String> {
    check_http_host(url)?;
    if url.path() != "/" && !url.path().is_empty() {
        return Err(format!(
            "must be an origin without a path (the MCP endpoint is <public_url>/mcp), got path `{}`",
            url.path()
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("must not carry credentials, a query or a fragment".into());
    }
    Ok(())
}

fn check_api_url(url: &Url) -> Result<(), String> {
    check_http_host(url)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(())
}

fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "null" {
        return Ok(());
    }
    let base = origin.strip_suffix(":*").unwrap_or(origin);
    let url = Url::parse(base).map_err(|e| format!("`{origin}` is not an origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{origin}` must look like https://host[:port]"));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!("`{origin}` must not have a path or query"));
    }
    Ok(())
}
