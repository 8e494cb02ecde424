//! The gateway's settings: built-in defaults, then a TOML file (`--config`), then
//! `LAYER_MCP_*` environment variables, then command-line flags, each layer overriding the one
//! before. Everything is checked once at start; a bad setting stops the process with a message
//! that names the setting and where its value came from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use redis_conn::RedisUrl;
use std::str::FromStr;
use std::time::Duration;

use url::Url;

use crate::caps::{CapsConfig, LimiterStore};

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

/// Every setting of a running gateway, validated. Build it with [`Config::load`] (the binary)
/// or start from [`Config::for_local`] (tests, the demo) and adjust fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Socket address to bind.
    pub listen: SocketAddr,
    /// The origin clients use to reach this gateway, e.g. `https://mcp.example.com`. The MCP
    /// endpoint is `<public_url>/mcp`; the Host allow-list and the default Origin allow-list
    /// follow it.
    pub public_url: Url,
    /// Extra `Host` values accepted besides the public URL's host (e.g. an internal name the
    /// load balancer's health checks use).
    pub extra_allowed_hosts: Vec<String>,
    /// Browser origins allowed to call `/mcp`, as `scheme://host[:port]`. A request without
    /// an `Origin` header is always fine; one with any other origin gets 403.
    pub allowed_origins: Vec<String>,
    /// Base of Layer's v1 API.
    pub layer_api_url: Url,
    /// Longest wait for a connection to Layer.
    pub upstream_connect_timeout: Duration,
    /// Longest wait for one Layer call, response included.
    pub upstream_request_timeout: Duration,
    /// Attempts per Layer call where a retry is safe (the first included).
    pub upstream_max_attempts: u32,
    /// How long a PAT that Layer accepted is trusted without asking Layer again.
    pub pat_cache_ttl: Duration,
    /// An MCP session unused for this long is closed.
    pub session_idle_timeout: Duration,
    /// Open MCP sessions one user may hold; opening another closes their least recently used.
    pub max_sessions_per_user: usize,
    /// Largest POST body on `/mcp`; larger gets 413.
    pub max_request_body_bytes: usize,
    /// Interval of SSE keep-alive comments.
    pub sse_keep_alive: Duration,
    /// Open streams of the older HTTP+SSE transport one user may hold (per replica); opening
    /// another closes their oldest.
    pub legacy_sse_streams_per_user: usize,
    /// Open streams of the older HTTP+SSE transport per replica; beyond it, 503.
    pub legacy_sse_max_streams: usize,
    /// On shutdown, how long calls in flight on old-transport streams may take to finish
    /// before the streams are closed anyway.
    pub shutdown_drain: Duration,
    /// `upload_file`: largest download.
    pub upload_max_bytes: u64,
    /// `upload_file`: time limit of the whole download.
    pub upload_timeout: Duration,
    /// `upload_file`: redirects followed at most.
    pub upload_max_redirects: u32,
    /// `upload_file`: hosts (`host` or `host:port`) exempt from the private-address check.
    /// Only for tests and demos that serve files from loopback.
    pub upload_allow_hosts: Vec<String>,
    /// Log line format.
    pub log_format: LogFormat,
    /// The Redis every replica shares (`redis_url`): the limiter uses it unless `limiter` says
    /// otherwise; issue 7's shared state is meant to use the same one.
    pub redis_url: Option<RedisUrl>,
    /// PEM file of a private CA that signed the Redis server's certificate (`rediss://`
    /// URLs: `redis_url`, a `limiter` URL, the OAuth `--store`). Without it, the system's
    /// roots.
    pub redis_ca_file: Option<PathBuf>,
    /// The per-user caps of issue 5 (active runs, calls in flight) and where they are counted.
    pub caps: CapsConfig,
    /// Things worth a warning at start that do not stop it (e.g. an unknown `LAYER_MCP_*`
    /// variable: the prefix is shared with tooling, so it cannot be an error).
    pub warnings: Vec<String>,
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
    /// port), plus the extra hosts.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        if let Some(host) = self.public_url.host_str() {
            hosts.push(host.to_owned());
            if let Some(port) = self.public_url.port() {
                hosts.push(format!("{host}:{port}"));
            }
        }
        hosts.extend(self.extra_allowed_hosts.iter().cloned());
        hosts
    }

    /// Reads the file (if any), the environment and the flags, in that order of precedence
    /// (flags win), and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        flags: &Flags,
    ) -> Result<Self, ConfigError> {
        let layers = Layers::read(file, env)?;
        layers.build(flags)
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
        Ok(())
    }
}

/// The settings that have command-line flags (`serve --listen …`). `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub layer_api_url: Option<String>,
    pub redis_url: Option<String>,
    pub limiter: Option<String>,
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
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
    fn invalid(setting: &str, origin: Origin, message: String) -> Self {
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

/// Every key the file and the environment accept (env: upper-cased with the prefix).
/// `layer-mcp-gateway settings` lists them, and `docs/operations.md` must document each
/// (`tests/tests/deploy.rs`).
pub const KEYS: &[&str] = &[
    "listen",
    "public_url",
    "allowed_hosts",
    "allowed_origins",
    "layer_api_url",
    "upstream_connect_timeout_secs",
    "upstream_request_timeout_secs",
    "upstream_max_attempts",
    "pat_cache_ttl_secs",
    "session_idle_timeout_secs",
    "max_sessions_per_user",
    "max_request_body_bytes",
    "sse_keep_alive_secs",
    "legacy_sse_streams_per_user",
    "legacy_sse_max_streams",
    "shutdown_drain_secs",
    "upload_max_bytes",
    "upload_timeout_secs",
    "upload_max_redirects",
    "upload_allow_hosts",
    "log_format",
    "redis_url",
    "redis_ca_file",
    "limiter",
    "max_active_runs",
    "max_calls_in_flight",
    "call_queue_wait_secs",
    "run_lease_secs",
    "reservation_lease_secs",
    "call_lease_secs",
    "run_check_timeout_secs",
];

/// Settings whose values may carry credentials (a Redis URL's password).
pub const SECRET_KEYS: &[&str] = &["redis_url", "limiter"];

/// A raw value before parsing: one string, or a list (TOML array or comma-separated env).
#[derive(Debug, Clone)]
enum Raw {
    One(String),
    Many(Vec<String>),
}

struct Layers {
    file: BTreeMap<String, (Raw, Origin)>,
    env: BTreeMap<String, (Raw, Origin)>,
    /// `LAYER_MCP_*` variables that name no setting.
    unknown_env: Vec<String>,
}

impl Layers {
    fn read(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut file_values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            for (key, value) in table {
                let origin = Origin::File(path.to_owned());
                if !KEYS.contains(&key.as_str()) {
                    return Err(ConfigError::Unknown {
                        setting: key,
                        origin,
                        known: KEYS.join(", "),
                    });
                }
                let raw = match value {
                    toml::Value::Array(items) => {
                        Raw::Many(items.into_iter().map(toml_scalar).collect())
                    }
                    other => Raw::One(toml_scalar(other)),
                };
                file_values.insert(key, (raw, origin));
            }
        }
        let mut env_values = BTreeMap::new();
        let mut unknown_env = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if !KEYS.contains(&key.as_str()) {
                unknown_env.push(name.clone());
                continue;
            }
            env_values.insert(key, (Raw::One(value.clone()), Origin::Env(name.clone())));
        }
        Ok(Self {
            file: file_values,
            env: env_values,
            unknown_env,
        })
    }

    /// The winning raw value of `key`: flag, then env, then file.
    fn raw(&self, key: &str, flag: Option<(&'static str, &String)>) -> Option<(Raw, Origin)> {
        if let Some((name, value)) = flag {
            return Some((Raw::One(value.clone()), Origin::Flag(name)));
        }
        self.env.get(key).or_else(|| self.file.get(key)).cloned()
    }

    fn scalar<T: FromStr>(
        &self,
        key: &str,
        flag: Option<(&'static str, &String)>,
    ) -> Result<Option<(T, Origin)>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        let Some((raw, origin)) = self.raw(key, flag) else {
            return Ok(None);
        };
        let text = match raw {
            Raw::One(text) => text,
            Raw::Many(_) => {
                return Err(ConfigError::invalid(
                    key,
                    origin,
                    "must be a single value, not a list".into(),
                ));
            }
        };
        match text.trim().parse::<T>() {
            Ok(value) => Ok(Some((value, origin))),
            // Values that may hold a password are never repeated.
            Err(e) if SECRET_KEYS.contains(&key) => {
                Err(ConfigError::invalid(key, origin, e.to_string()))
            }
            Err(e) => Err(ConfigError::invalid(
                key,
                origin,
                format!("{e} (got {:?})", shorten(&text)),
            )),
        }
    }

    fn list(&self, key: &str) -> Option<(Vec<String>, Origin)> {
        let (raw, origin) = self.raw(key, None)?;
        let items = match raw {
            Raw::Many(items) => items,
            Raw::One(text) => text.split(',').map(str::to_owned).collect(),
        };
        let items = items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        Some((items, origin))
    }

    fn secs(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self
            .scalar::<u64>(key, None)?
            .map_or(default, |(s, _)| Duration::from_secs(s)))
    }

    fn build(&self, flags: &Flags) -> Result<Config, ConfigError> {
        let listen = match self
            .scalar::<SocketAddr>("listen", flags.listen.as_ref().map(|v| ("--listen", v)))?
        {
            Some((addr, _)) => addr,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| ConfigError::invalid("listen", Origin::Default, format!("{e}")))?,
        };
        let layer_api_url = match self.scalar::<Url>(
            "layer_api_url",
            flags.layer_api_url.as_ref().map(|v| ("--layer-api-url", v)),
        )? {
            Some((url, origin)) => {
                check_api_url(&url)
                    .map_err(|m| ConfigError::invalid("layer_api_url", origin, m))?;
                url
            }
            None => Url::parse(DEFAULT_LAYER_API_URL).map_err(|e| {
                ConfigError::invalid("layer_api_url", Origin::Default, e.to_string())
            })?,
        };
        let mut config = Config::for_local(listen, layer_api_url);
        if let Some((url, origin)) = self.scalar::<Url>(
            "public_url",
            flags.public_url.as_ref().map(|v| ("--public-url", v)),
        )? {
            check_public_url(&url).map_err(|m| ConfigError::invalid("public_url", origin, m))?;
            config.public_url = url;
            config.allowed_origins = vec![origin_of(&config.public_url)];
        }
        if let Some((hosts, _)) = self.list("allowed_hosts") {
            config.extra_allowed_hosts = hosts;
        }
        if let Some((origins, origin)) = self.list("allowed_origins") {
            for o in &origins {
                check_origin(o)
                    .map_err(|m| ConfigError::invalid("allowed_origins", origin.clone(), m))?;
            }
            config.allowed_origins = origins;
        }
        config.upstream_connect_timeout = self.secs(
            "upstream_connect_timeout_secs",
            config.upstream_connect_timeout,
        )?;
        config.upstream_request_timeout = self.secs(
            "upstream_request_timeout_secs",
            config.upstream_request_timeout,
        )?;
        if let Some((n, _)) = self.scalar::<u32>("upstream_max_attempts", None)? {
            config.upstream_max_attempts = n;
        }
        config.pat_cache_ttl = self.secs("pat_cache_ttl_secs", config.pat_cache_ttl)?;
        config.session_idle_timeout =
            self.secs("session_idle_timeout_secs", config.session_idle_timeout)?;
        if let Some((n, _)) = self.scalar::<usize>("max_sessions_per_user", None)? {
            config.max_sessions_per_user = n;
        }
        if let Some((n, _)) = self.scalar::<usize>("max_request_body_bytes", None)? {
            config.max_request_body_bytes = n;
        }
        config.sse_keep_alive = self.secs("sse_keep_alive_secs", config.sse_keep_alive)?;
        if let Some((n, _)) = self.scalar::<usize>("legacy_sse_streams_per_user", None)? {
            config.legacy_sse_streams_per_user = n;
        }
        if let Some((n, _)) = self.scalar::<usize>("legacy_sse_max_streams", None)? {
            config.legacy_sse_max_streams = n;
        }
        config.shutdown_drain = self.secs("shutdown_drain_secs", config.shutdown_drain)?;
        if let Some((n, _)) = self.scalar::<u64>("upload_max_bytes", None)? {
            config.upload_max_bytes = n;
        }
        config.upload_timeout = self.secs("upload_timeout_secs", config.upload_timeout)?;
        if let Some((n, _)) = self.scalar::<u32>("upload_max_redirects", None)? {
            config.upload_max_redirects = n;
        }
        if let Some((hosts, _)) = self.list("upload_allow_hosts") {
            config.upload_allow_hosts = hosts;
        }
        if let Some((format, _)) = self.scalar::<LogFormat>("log_format", None)? {
            config.log_format = format;
        }
        self.build_caps(&mut config, flags)?;
        for name in &self.unknown_env {
            config.warnings.push(format!(
                "ignoring environment variable {name}: it names no setting (known: {})",
                env_names()
            ));
        }
        // Re-run the checks with the origin of each value, so the message names its source.
        config.validate().map_err(|e| self.attribute(e))?;
        Ok(config)
    }

    /// `redis_url`, `limiter` and the numbers of the caps.
    fn build_caps(&self, config: &mut Config, flags: &Flags) -> Result<(), ConfigError> {
        if let Some((url, _)) = self.scalar::<RedisUrl>(
            "redis_url",
            flags.redis_url.as_ref().map(|v| ("--redis-url", v)),
        )? {
            config.redis_url = Some(url);
        }
        if let Some((path, origin)) = self.scalar::<PathBuf>("redis_ca_file", None)? {
            std::fs::metadata(&path).map_err(|e| {
                ConfigError::invalid(
                    "redis_ca_file",
                    origin,
                    format!("cannot read {} ({})", path.display(), e.kind()),
                )
            })?;
            config.redis_ca_file = Some(path);
        }
        let caps = &mut config.caps;
        caps.store = match self
            .scalar::<LimiterChoice>("limiter", flags.limiter.as_ref().map(|v| ("--limiter", v)))?
        {
            None => config
                .redis_url
                .clone()
                .map_or(LimiterStore::InProcess, LimiterStore::Redis),
            Some((LimiterChoice::InProcess, _)) => LimiterStore::InProcess,
            Some((LimiterChoice::Url(url), _)) => LimiterStore::Redis(url),
            Some((LimiterChoice::SharedRedis, origin)) => match &config.redis_url {
                Some(url) => LimiterStore::Redis(url.clone()),
                None => {
                    return Err(ConfigError::invalid(
                        "limiter",
                        origin,
                        "`redis` needs `redis_url` (LAYER_MCP_REDIS_URL or --redis-url); or give the URL itself".into(),
                    ));
                }
            },
        };
        if let Some((n, _)) = self.scalar::<u32>("max_active_runs", None)? {
            caps.max_active_runs = n;
        }
        if let Some((n, _)) = self.scalar::<u32>("max_calls_in_flight", None)? {
            caps.max_calls_in_flight = n;
        }
        caps.call_queue_wait = self.secs("call_queue_wait_secs", caps.call_queue_wait)?;
        caps.run_lease = self.secs("run_lease_secs", caps.run_lease)?;
        caps.reservation_lease = self.secs("reservation_lease_secs", caps.reservation_lease)?;
        caps.call_lease = self.secs("call_lease_secs", caps.call_lease)?;
        caps.run_check_timeout = self.secs("run_check_timeout_secs", caps.run_check_timeout)?;
        Ok(())
    }

    /// Replaces [`Origin::Built`] in an error from [`Config::validate`] with where the value
    /// really came from.
    fn attribute(&self, error: ConfigError) -> ConfigError {
        match error {
            ConfigError::Invalid {
                setting,
                origin: Origin::Built,
                message,
            } => {
                let origin = self
                    .env
                    .get(&setting)
                    .or_else(|| self.file.get(&setting))
                    .map_or(Origin::Default, |(_, o)| o.clone());
                ConfigError::Invalid {
                    setting,
                    origin,
                    message,
                }
            }
            other => other,
        }
    }
}

/// What the `limiter` setting says: `memory` (in process), `redis` (the shared `redis_url`)
/// or a Redis URL of its own.
enum LimiterChoice {
    InProcess,
    SharedRedis,
    Url(RedisUrl),
}

impl FromStr for LimiterChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "memory" | "in-process" | "local" => Ok(LimiterChoice::InProcess),
            "redis" => Ok(LimiterChoice::SharedRedis),
            _ if s.contains("://") => s
                .parse()
                .map(LimiterChoice::Url)
                .map_err(|e: redis_conn::UrlError| e.to_string()),
            _ => Err("must be `memory`, `redis` (use redis_url) or a redis:// URL".into()),
        }
    }
}

fn env_names() -> String {
    KEYS.iter()
        .map(|k| format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn toml_scalar(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

fn loopback_url(listen: SocketAddr) -> Url {
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

fn check_public_url(url: &Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, got scheme `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err("must name a host".into());
    }
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
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, got scheme `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err("must name a host".into());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(contents: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with_contents(contents)
    }

    /// A file under the target's temp dir removed on drop, without a dependency for it.
    mod tempfile_path {
        use std::path::{Path, PathBuf};
        pub struct TempPath(PathBuf);
        impl TempPath {
            pub fn with_contents(contents: &str) -> Self {
                let path = std::env::temp_dir()
                    .join(format!("gateway-config-{}.toml", uuid::Uuid::new_v4()));
                std::fs::write(&path, contents).unwrap();
                Self(path)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_point_at_real_layer_and_loopback() {
        let config = Config::load(None, &env(&[]), &Flags::default()).unwrap();
        assert_eq!(config.layer_api_url.as_str(), DEFAULT_LAYER_API_URL);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.mcp_url(), "http://127.0.0.1:8080/mcp");
        assert_eq!(
            config.allowed_origins,
            vec!["http://127.0.0.1:8080".to_owned()]
        );
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = write(
            "listen = \"127.0.0.1:1111\"\npublic_url = \"https://file.example\"\nmax_sessions_per_user = 3\n",
        );
        let e = env(&[
            ("LAYER_MCP_PUBLIC_URL", "https://env.example"),
            ("LAYER_MCP_LISTEN", "127.0.0.1:2222"),
        ]);
        let flags = Flags {
            listen: Some("127.0.0.1:3333".into()),
            ..Flags::default()
        };
        let config = Config::load(Some(file.path()), &e, &flags).unwrap();
        assert_eq!(config.listen.port(), 3333);
        assert_eq!(config.public_url.as_str(), "https://env.example/");
        assert_eq!(config.max_sessions_per_user, 3);
        assert_eq!(config.mcp_url(), "https://env.example/mcp");
        assert_eq!(config.allowed_hosts(), vec!["env.example".to_owned()]);
        assert_eq!(
            config.allowed_origins,
            vec!["https://env.example".to_owned()]
        );
    }

    #[test]
    fn lists_from_file_and_env() {
        let file = write("upload_allow_hosts = [\"127.0.0.1:9\", \"sim.local\"]\n");
        let config = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap();
        assert_eq!(config.upload_allow_hosts, vec!["127.0.0.1:9", "sim.local"]);
        let e = env(&[(
            "LAYER_MCP_ALLOWED_ORIGINS",
            "https://a.example, https://b.example:8443",
        )]);
        let config = Config::load(None, &e, &Flags::default()).unwrap();
        assert_eq!(
            config.allowed_origins,
            vec!["https://a.example", "https://b.example:8443"]
        );
    }

    #[test]
    fn bad_values_name_the_setting_and_the_source() {
        let err = Config::load(
            None,
            &env(&[("LAYER_MCP_PUBLIC_URL", "ftp://x")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert_eq!(err.setting(), Some("public_url"));
        let text = err.to_string();
        assert!(
            text.contains("LAYER_MCP_PUBLIC_URL") && text.contains("http or https"),
            "{text}"
        );

        let flags = Flags {
            listen: Some("not-an-address".into()),
            ..Flags::default()
        };
        let err = Config::load(None, &env(&[]), &flags).unwrap_err();
        assert_eq!(err.setting(), Some("listen"));
        assert!(err.to_string().contains("--listen"), "{err}");

        let flags = Flags {
            public_url: Some("https://mcp.example.com/mcp".into()),
            ..Flags::default()
        };
        let err = Config::load(None, &env(&[]), &flags).unwrap_err();
        assert!(err.to_string().contains("without a path"), "{err}");

        let file = write("max_sessions_per_user = 0\n");
        let err = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap_err();
        assert_eq!(err.setting(), Some("max_sessions_per_user"));
        assert!(err.to_string().contains("config file"), "{err}");

        let file = write("pat_cache_ttl_secs = \"soon\"\n");
        let err = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap_err();
        assert_eq!(err.setting(), Some("pat_cache_ttl_secs"));
    }

    #[test]
    fn unknown_settings_are_refused_in_the_file_and_warned_about_in_the_environment() {
        let config =
            Config::load(None, &env(&[("LAYER_MCP_LISTNE", "x")]), &Flags::default()).unwrap();
        assert_eq!(config.warnings.len(), 1);
        assert!(
            config.warnings[0].contains("LAYER_MCP_LISTNE")
                && config.warnings[0].contains("LAYER_MCP_LISTEN")
        );
        let file = write("lisen = \"x\"\n");
        let err = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap_err();
        assert_eq!(err.setting(), Some("lisen"));
        // Other variables are none of our business.
        assert!(Config::load(None, &env(&[("PATH", "/bin")]), &Flags::default()).is_ok());
    }

    #[test]
    fn unreadable_or_malformed_file() {
        let err = Config::load(
            Some(Path::new("/nonexistent/gateway.toml")),
            &env(&[]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }));
        let file = write("listen = [\n");
        assert!(matches!(
            Config::load(Some(file.path()), &env(&[]), &Flags::default()),
            Err(ConfigError::File { .. })
        ));
    }

    #[test]
    fn the_limiter_follows_redis_url_unless_told_otherwise() {
        let config = Config::load(None, &env(&[]), &Flags::default()).unwrap();
        assert_eq!(config.caps.store, LimiterStore::InProcess);
        assert_eq!(config.caps.max_active_runs, 5);
        assert_eq!(config.caps.max_calls_in_flight, 5);

        let shared = env(&[(
            "LAYER_MCP_REDIS_URL",
            "redis://:s3cret@redis.internal:6379/2",
        )]);
        let config = Config::load(None, &shared, &Flags::default()).unwrap();
        let LimiterStore::Redis(url) = &config.caps.store else {
            panic!("{:?}", config.caps.store)
        };
        assert_eq!(url.expose(), "redis://:s3cret@redis.internal:6379/2");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("***"),
            "{shown}"
        );

        let flags = Flags {
            limiter: Some("memory".into()),
            ..Flags::default()
        };
        let config = Config::load(None, &shared, &flags).unwrap();
        assert_eq!(config.caps.store, LimiterStore::InProcess);

        let own = env(&[("LAYER_MCP_LIMITER", "redis://127.0.0.1:7777")]);
        let config = Config::load(None, &own, &Flags::default()).unwrap();
        assert!(
            matches!(&config.caps.store, LimiterStore::Redis(u) if u.expose() == "redis://127.0.0.1:7777")
        );

        let err = Config::load(
            None,
            &env(&[("LAYER_MCP_LIMITER", "redis")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert_eq!(err.setting(), Some("limiter"));
        assert!(err.to_string().contains("redis_url"), "{err}");
    }

    #[test]
    fn cap_numbers_are_settings_checked_at_start() {
        let file = write(
            "max_active_runs = 2\nmax_calls_in_flight = 3\ncall_queue_wait_secs = 4\nrun_lease_secs = 600\nreservation_lease_secs = 5\ncall_lease_secs = 6\nrun_check_timeout_secs = 7\n",
        );
        let config = Config::load(Some(file.path()), &env(&[]), &Flags::default()).unwrap();
        let caps = &config.caps;
        assert_eq!((caps.max_active_runs, caps.max_calls_in_flight), (2, 3));
        assert_eq!(caps.call_queue_wait, Duration::from_secs(4));
        assert_eq!(caps.run_lease, Duration::from_secs(600));
        assert_eq!(caps.reservation_lease, Duration::from_secs(5));
        assert_eq!(caps.call_lease, Duration::from_secs(6));
        assert_eq!(caps.run_check_timeout, Duration::from_secs(7));

        let err = Config::load(
            None,
            &env(&[("LAYER_MCP_MAX_ACTIVE_RUNS", "0")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert_eq!(err.setting(), Some("max_active_runs"));
        assert!(
            err.to_string().contains("LAYER_MCP_MAX_ACTIVE_RUNS"),
            "{err}"
        );

        let err = Config::load(
            None,
            &env(&[("LAYER_MCP_CALL_LEASE_SECS", "0")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert_eq!(err.setting(), Some("call_lease_secs"));
    }

    #[test]
    fn a_bad_redis_url_is_refused_without_repeating_it() {
        let flags = Flags {
            redis_url: Some("http://user:hunter2@example.com".into()),
            ..Flags::default()
        };
        let err = Config::load(None, &env(&[]), &flags).unwrap_err();
        assert_eq!(err.setting(), Some("redis_url"));
        let text = err.to_string();
        assert!(
            text.contains("--redis-url") && !text.contains("hunter2"),
            "{text}"
        );
        let err = Config::load(
            None,
            &env(&[("LAYER_MCP_LIMITER", "rediss//:hunter2@x")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert_eq!(err.setting(), Some("limiter"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn public_url_with_port_allows_both_host_forms() {
        let flags = Flags {
            public_url: Some("http://localhost:9000".into()),
            ..Flags::default()
        };
        let config = Config::load(None, &env(&[]), &flags).unwrap();
        assert_eq!(config.allowed_hosts(), vec!["localhost", "localhost:9000"]);
    }
}
