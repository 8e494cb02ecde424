//! Loading: one figment layer per file, variable and flag, merged over the defaults.

use std::collections::BTreeMap;
use std::path::Path;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::Deserialize;

use super::{Flags, all, find};
use crate::caps::{CapsConfig, LimiterStore};
use crate::config::{Config, ConfigError, ENV_PREFIX, Origin, loopback_url, origin_of};

/// One layer of values, all from one place.
struct Layer {
    origin: Origin,
    values: Dict,
}

impl Layer {
    fn one(origin: Origin, key: &str, value: &str) -> Self {
        let secret = find(key).is_some_and(|s| s.secret);
        // Surrounding blanks are a copy-paste accident in a number or an address; a
        // credential is taken as it is.
        let value = if secret { value } else { value.trim() };
        let mut values = Dict::new();
        values.insert(key.to_owned(), Value::from(value.to_owned()));
        Layer { origin, values }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let source = match &self.origin {
            Origin::File(path) => Source::File(path.clone()),
            Origin::Env(name) => Source::Custom(format!("env:{name}")),
            Origin::Flag(flag) => Source::Custom(format!("flag:{flag}")),
            Origin::Default | Origin::Built => Source::Custom("default".into()),
        };
        Metadata::from(self.origin.to_string(), source)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

fn origin_of_metadata(metadata: &Metadata) -> Origin {
    match &metadata.source {
        Some(Source::File(path)) => Origin::File(path.clone()),
        Some(Source::Custom(text)) => {
            if let Some(name) = text.strip_prefix("env:") {
                Origin::Env(name.to_owned())
            } else if let Some(flag) = text.strip_prefix("flag:") {
                Origin::Flag(flag.to_owned())
            } else {
                Origin::Default
            }
        }
        _ => Origin::Default,
    }
}

/// Where the value of `key` came from: its layer, or the default.
fn origin(figment: &Figment, key: &str) -> Origin {
    figment
        .find_metadata(key)
        .map_or(Origin::Default, origin_of_metadata)
}

fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let file_error = |message: String| ConfigError::File {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    let origin = Origin::File(path.to_owned());
    let mut values = Dict::new();
    for (key, value) in table {
        if find(&key).is_none() {
            return Err(ConfigError::Unknown {
                setting: key,
                origin,
                known: all().map(|s| s.key.as_str()).collect::<Vec<_>>().join(", "),
            });
        }
        let value = Value::serialize(value).map_err(|e| file_error(e.to_string()))?;
        values.insert(key, value);
    }
    Ok(Layer { origin, values })
}

/// The environment's layers (older names first, so the current one wins when both are set)
/// and a warning for each `LAYER_MCP_*` variable that names no setting.
fn env_layers(env: &BTreeMap<String, String>) -> (Vec<Layer>, Vec<String>) {
    let mut old = Vec::new();
    let mut current = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in env {
        if !name.starts_with(ENV_PREFIX) {
            continue;
        }
        let origin = Origin::Env(name.clone());
        if let Some(s) = all().find(|s| &s.env == name) {
            current.push(Layer::one(origin, &s.key, value));
        } else if let Some(s) = all().find(|s| s.env_aliases.contains(name)) {
            old.push(Layer::one(origin, &s.key, value));
        } else {
            let known: Vec<&str> = all().map(|s| s.env.as_str()).collect();
            warnings.push(format!(
                "ignoring environment variable {name}: it names no setting (known: {})",
                known.join(", ")
            ));
        }
    }
    old.extend(current);
    (old, warnings)
}

/// Reads the file (if any), the environment and the flags, in that order of precedence
/// (flags win), and validates the result; see the module's documentation.
pub fn load(
    file: Option<&Path>,
    env: &BTreeMap<String, String>,
    flags: &Flags,
) -> Result<Config, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        figment = figment.merge(file_layer(path)?);
    }
    let (layers, warnings) = env_layers(env);
    for layer in layers {
        figment = figment.merge(layer);
    }
    for (key, value) in &flags.0 {
        let flag = find(key)
            .and_then(|s| s.flag.clone())
            .unwrap_or_else(|| format!("--{}", key.replace('_', "-")));
        figment = figment.merge(Layer::one(Origin::Flag(flag), key, value));
    }

    let mut config: Config = extract(&figment)?;
    // Defaults that follow other settings.
    if !figment.contains("public_url") {
        config.public_url = loopback_url(config.listen);
    }
    if !figment.contains("allowed_origins") {
        config.allowed_origins = vec![origin_of(&config.public_url)];
    }
    if let Some(path) = &config.redis_ca_file {
        std::fs::metadata(path).map_err(|e| {
            ConfigError::invalid(
                "redis_ca_file",
                origin(&figment, "redis_ca_file"),
                format!("cannot read {} ({})", path.display(), e.kind()),
            )
        })?;
    }
    // `limiter = "redis"` means the shared `redis_url`, which only the loader knows.
    let shared_redis = matches!(
        figment.find_value("limiter"),
        Ok(Value::String(_, ref s)) if s.trim().eq_ignore_ascii_case("redis")
    );
    if shared_redis {
        let from = origin(&figment, "limiter");
        if config.redis_url.is_none() {
            return Err(ConfigError::invalid(
                "limiter",
                from,
                "`redis` needs `redis_url` (LAYER_MCP_REDIS_URL or --redis-url); or give the URL itself".into(),
            ));
        }
        figment = figment.merge(Layer::one(from, "limiter", "memory"));
    }
    let mut caps: CapsConfig = extract(&figment)?;
    if shared_redis || !figment.contains("limiter") {
        caps.store = config
            .redis_url
            .clone()
            .map_or(LimiterStore::InProcess, LimiterStore::Redis);
    }
    config.caps = caps;
    config.oauth = extract(&figment)?;
    config.warnings = warnings;
    // The checks that span settings, with the origin of each value, so the message names
    // its source.
    config.validate().map_err(|e| match e {
        ConfigError::Invalid {
            setting,
            origin: Origin::Built,
            message,
        } => ConfigError::Invalid {
            origin: origin(&figment, &setting),
            setting,
            message,
        },
        other => other,
    })?;
    Ok(config)
}

fn extract<T: for<'de> Deserialize<'de>>(figment: &Figment) -> Result<T, ConfigError> {
    figment
        .extract_lossy()
        .map_err(|e: figment::Error| describe(e, figment))
}

/// The first error, naming the setting and its source; a secret's value is never repeated.
fn describe(error: figment::Error, figment: &Figment) -> ConfigError {
    use figment::error::{Actual, Kind};
    let Some(error) = error.into_iter().next() else {
        return ConfigError::invalid("?", Origin::Default, "unreadable settings".into());
    };
    let setting = error.path.first().cloned().unwrap_or_default();
    let from = error
        .metadata
        .as_ref()
        .map_or_else(|| origin(figment, &setting), origin_of_metadata);
    let secret = find(&setting).is_none_or(|s| s.secret);
    let kind_of = |actual: &Actual| match actual {
        Actual::Str(_) => "a string".to_owned(),
        _ if secret => "a value of another type".to_owned(),
        other => other.to_string(),
    };
    let message = match &error.kind {
        Kind::Message(message) if secret => message.clone(),
        Kind::Message(message) => match figment.find_value(&setting) {
            Ok(Value::String(_, text)) if !message.contains(text.as_str()) => {
                format!(
                    "{message} (got {:?})",
                    text.chars().take(80).collect::<String>()
                )
            }
            _ => message.clone(),
        },
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) if secret => {
            format!("expected {expected}, found {}", kind_of(actual))
        }
        other => other.to_string(),
    };
    ConfigError::invalid(&setting, from, message)
}
