//! Every setting `serve` knows, loaded in layers: built-in defaults, the TOML file
//! (`--config`), `LAYER_MCP_*` environment variables, then flags, each overriding the one
//! before.
//!
//! A setting is written once: a field of a component's settings struct ([`Config`],
//! [`CapsConfig`], [`OAuthSettings`]) with a doc comment. From those structs come the TOML
//! keys (serde names), the variables (`LAYER_MCP_` + the key upper case, plus any
//! `x-env-aliases`), the `serve` flags (`x-flag`, built into clap at run time by [`Flags`]),
//! what is secret (`x-secret`), the defaults (the struct's `Default`, or `x-default` where
//! the default follows another setting) and the text of the reference. `layer-mcp-gateway
//! settings` prints the list the deployment tests read, and `settings --markdown` the tables
//! of `docs/operations.md` (a test compares them).
//!
//! The definitions are read through `schemars::JsonSchema`, derived on those structs: doc
//! comments become descriptions, the defaults come along serialized, and `extend(...)` carries
//! the few facts serde does not know, so there is no second list to keep (a declarative macro
//! would have meant a parallel syntax for structs that serde already describes).
//!
//! The layers are merged by `figment`, whose values keep the metadata of the layer they came
//! from, so an error names the setting and its source. It is used without its `toml` and
//! `env` features: the former would bring a second `toml` (0.8 beside our 0.9), which reads
//! the file here; the latter reads only the process environment and parses values into
//! numbers and arrays itself, where [`load`] takes the environment as a map (tests) and must
//! know each variable by its name, aliases included, to report it. Each variable and flag
//! given is its own small layer, so a message names exactly the variable or flag used.
//! Values are extracted "lossily" (`"30"` is a number where a number is wanted), as the
//! environment and flags only have text. A value that may carry a credential is never
//! repeated in a message.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::LazyLock;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde::Deserialize;

use crate::caps::{CapsConfig, LimiterStore};
use crate::config::{
    Config, ConfigError, ENV_PREFIX, OAuthSettings, Origin, loopback_url, origin_of,
};

/// One setting and the names it goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its key in the TOML file (the field's serde name).
    pub key: String,
    /// Its environment variable.
    pub env: String,
    /// Older names of its variable that still work.
    pub env_aliases: Vec<String>,
    /// Its `serve` flag (`--name`), when it has one.
    pub flag: Option<String>,
    /// Older names of its flag that still work.
    pub flag_aliases: Vec<String>,
    /// Whether its value may be a credential (it belongs in a Secret, never in a ConfigMap).
    pub secret: bool,
    /// Whether it is a switch (a flag without a value).
    pub switch: bool,
    /// Its default, as the reference shows it (Markdown).
    pub default: String,
    /// What it does: the field's doc comment.
    pub description: String,
}

/// The settings of one component, in declaration order.
#[derive(Debug)]
pub struct Component {
    /// Its name in the markers of `docs/operations.md` (`<!-- settings:NAME -->`).
    pub name: &'static str,
    pub settings: Vec<Setting>,
}

static COMPONENTS: LazyLock<Vec<Component>> = LazyLock::new(|| {
    vec![
        component::<Config>("gateway"),
        component::<CapsConfig>("caps"),
        component::<OAuthSettings>("oauth"),
    ]
});

/// Every component's settings.
pub fn components() -> &'static [Component] {
    &COMPONENTS
}

/// Every setting, component by component.
pub fn all() -> impl Iterator<Item = &'static Setting> {
    components().iter().flat_map(|c| c.settings.iter())
}

/// The setting with this TOML key.
pub fn find(key: &str) -> Option<&'static Setting> {
    all().find(|s| s.key == key)
}

fn component<T>(name: &'static str) -> Component
where
    T: schemars::JsonSchema + for<'de> Deserialize<'de>,
{
    let schema = schemars::schema_for!(T);
    let properties = schema.get("properties").and_then(|p| p.as_object());
    let settings = field_names::<T>()
        .iter()
        .map(|key| {
            let empty = serde_json::Map::new();
            let property = properties
                .and_then(|p| p.get(*key))
                .and_then(|p| p.as_object())
                .unwrap_or(&empty);
            setting(key, property)
        })
        .collect();
    Component { name, settings }
}

fn setting(key: &str, property: &serde_json::Map<String, serde_json::Value>) -> Setting {
    let text = |name: &str| {
        property
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let names = |name: &str| -> Vec<String> {
        property
            .get(name)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let description = text("description")
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let default = text("x-default").unwrap_or_else(|| match property.get("default") {
        None | Some(serde_json::Value::Null) => "none".to_owned(),
        Some(serde_json::Value::String(s)) => format!("`{s}`"),
        Some(serde_json::Value::Bool(b)) => if *b { "on" } else { "off" }.to_owned(),
        Some(serde_json::Value::Array(items)) if items.is_empty() => "none".to_owned(),
        Some(other) => other.to_string(),
    });
    Setting {
        key: key.to_owned(),
        env: format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
        env_aliases: names("x-env-aliases"),
        flag: text("x-flag"),
        flag_aliases: names("x-flag-aliases"),
        secret: property.get("x-secret") == Some(&serde_json::Value::Bool(true)),
        switch: property.get("type").and_then(|t| t.as_str()) == Some("boolean"),
        default,
        description,
    }
}

/// The serde names of a struct's fields in declaration order (schemars' properties are
/// sorted): a derived `Deserialize` hands them to `deserialize_struct`, which this
/// deserializer only records.
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);
    impl fmt::Display for Fields {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("not a struct")
        }
    }
    impl std::error::Error for Fields {}
    impl serde::de::Error for Fields {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }
    struct Probe;
    impl<'de> serde::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(fields)) => fields,
        Ok(_) => &[],
    }
}

/// The `--config` flag, which is no setting but names the file they are read from.
const CONFIG_FLAG: &str = "--config";

/// One line per setting (after `--config`): TOML key, variable, flag, `secret` or `plain`,
/// then the older names that still work (comma-separated), tab-separated, `-` where there is
/// none. The deployment tests read it.
pub fn render() -> String {
    let mut out = format!("-\t-\t{CONFIG_FLAG}\tplain\t-\n");
    for s in all() {
        let aliases: Vec<&str> = s
            .env_aliases
            .iter()
            .chain(&s.flag_aliases)
            .map(String::as_str)
            .collect();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            s.key,
            s.env,
            s.flag.as_deref().unwrap_or("-"),
            if s.secret { "secret" } else { "plain" },
            if aliases.is_empty() {
                "-".to_owned()
            } else {
                aliases.join(",")
            }
        );
    }
    out
}

/// The reference table of one component, as `docs/operations.md` has it between
/// `<!-- settings:NAME -->` and `<!-- /settings:NAME -->`.
pub fn markdown_table(component: &Component) -> String {
    let code = |name: &str| format!("`{name}`");
    let with_aliases = |name: Option<String>, aliases: &[String]| match name {
        None => "—".to_owned(),
        Some(name) if aliases.is_empty() => name,
        Some(name) => {
            let old: Vec<String> = aliases.iter().map(|a| code(a)).collect();
            format!("{name} (also {})", old.join(", "))
        }
    };
    let mut out = String::from(
        "| TOML key | environment variable | flag | default | meaning |\n|---|---|---|---|---|\n",
    );
    if component.name == "gateway" {
        let _ = writeln!(
            out,
            "| — | — | {} | none | the TOML file with any of the keys of these tables |",
            code(CONFIG_FLAG)
        );
    }
    for s in &component.settings {
        let secret = if s.secret { "**secret**. " } else { "" };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {secret}{} |",
            code(&s.key),
            with_aliases(Some(code(&s.env)), &s.env_aliases),
            with_aliases(s.flag.as_deref().map(code), &s.flag_aliases),
            s.default.replace('|', "\\|"),
            s.description.replace('|', "\\|"),
        );
    }
    out
}

/// Every component's table between its markers, as `settings --markdown` prints them.
pub fn markdown() -> String {
    let mut out = String::new();
    for component in components() {
        let _ = write!(
            out,
            "{}\n{}{}\n\n",
            begin_marker(component.name),
            markdown_table(component),
            end_marker(component.name)
        );
    }
    out
}

pub fn begin_marker(name: &str) -> String {
    format!("<!-- settings:{name} (generated: layer-mcp-gateway settings --markdown) -->")
}

pub fn end_marker(name: &str) -> String {
    format!("<!-- /settings:{name} -->")
}

// ---------------------------------------------------------------------------------------
// Flags
// ---------------------------------------------------------------------------------------

/// The `serve` flags of the settings that have one (`x-flag`), as given on the command line:
/// `(TOML key, value)` pairs. Built into clap from the definitions, so a new flag is one
/// `x-flag`.
#[derive(Clone, Default)]
pub struct Flags(Vec<(String, String)>);

impl fmt::Debug for Flags {
    /// The flags given, without their values (some are credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

impl Flags {
    /// Adds a flag's value (tests; `key` is the setting's TOML key).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.push((key.to_owned(), value.to_owned()));
        self
    }
}

impl clap::FromArgMatches for Flags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Flags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        for s in all().filter(|s| s.flag.is_some()) {
            if s.switch {
                if matches.get_flag(&s.key) {
                    self.0.push((s.key.clone(), "true".to_owned()));
                }
            } else if let Some(value) = matches.get_one::<String>(&s.key) {
                self.0.push((s.key.clone(), value.clone()));
            }
        }
        Ok(())
    }
}

impl clap::Args for Flags {
    fn augment_args(mut command: clap::Command) -> clap::Command {
        for s in all() {
            let Some(flag) = &s.flag else { continue };
            let long = |f: &String| f.trim_start_matches('-').to_owned();
            let mut arg = clap::Arg::new(s.key.clone())
                .long(long(flag))
                .help(format!("{} [variable: {}]", s.description, s.env))
                .visible_aliases(s.flag_aliases.iter().map(long));
            arg = if s.switch {
                arg.action(clap::ArgAction::SetTrue)
            } else {
                arg.value_name(s.key.to_ascii_uppercase())
            };
            command = command.arg(arg);
        }
        command
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// serde helpers for the settings structs
// ---------------------------------------------------------------------------------------

/// A [`Duration`](std::time::Duration) as whole seconds (`*_secs` settings).
pub(crate) mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A list: a TOML array, or a comma-separated string (the environment); blanks trimmed,
/// empty items dropped.
pub(crate) mod list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Items {
        Many(Vec<String>),
        One(String),
    }

    pub fn serialize<S: Serializer>(value: &[String], s: S) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let items = match Items::deserialize(d)? {
            Items::Many(items) => items,
            Items::One(text) => text.split(',').map(str::to_owned).collect(),
        };
        Ok(items
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect())
    }
}

/// A value written as text: parsed with `FromStr`, shown with `Display` (which redacts what
/// must be: a Redis URL's password).
pub(crate) mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer, T: Display>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let text = String::deserialize(d)?;
        text.trim().parse().map_err(D::Error::custom)
    }

    /// The same for an optional value.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer, T: Display>(
            value: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => s.collect_str(value),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
        where
            D: Deserializer<'de>,
            T: FromStr,
            T::Err: Display,
        {
            match Option::<String>::deserialize(d)? {
                Some(text) => text.trim().parse().map(Some).map_err(D::Error::custom),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;
    use std::time::Duration;

    use super::*;
    use crate::config::{DEFAULT_LAYER_API_URL, DEFAULT_LISTEN};
    use clap::{Args as _, FromArgMatches as _};

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// What `serve` would make of these flags.
    fn flags(args: &[&str]) -> Flags {
        let command = Flags::augment_args(clap::Command::new("serve"));
        let matches = command
            .try_get_matches_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap();
        Flags::from_arg_matches(&matches).unwrap()
    }

    fn enabled_oauth() -> Vec<(&'static str, &'static str)> {
        vec![
            ("LAYER_MCP_OAUTH_IDP_ISSUER", "https://login.example/"),
            ("LAYER_MCP_OAUTH_IDP_CLIENT_ID", "gw"),
            ("LAYER_MCP_OAUTH_IDP_CLIENT_SECRET", "client-s3cret"),
        ]
    }

    #[test]
    fn the_reference_in_the_operations_guide_is_generated_from_the_definitions() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
        let guide = std::fs::read_to_string(&path).unwrap();
        for component in components() {
            let (begin, end) = (begin_marker(component.name), end_marker(component.name));
            let start = guide
                .find(&begin)
                .unwrap_or_else(|| panic!("docs/operations.md lacks the marker {begin}"));
            let stop = guide[start..]
                .find(&end)
                .unwrap_or_else(|| panic!("docs/operations.md lacks the marker {end}"));
            let found = &guide[start + begin.len()..start + stop];
            assert_eq!(
                found.trim(),
                markdown_table(component).trim(),
                "the `{}` table of docs/operations.md differs from the code: paste the output \
                 of `cargo run -p layer-mcp-gateway -- settings --markdown` between its markers",
                component.name
            );
        }
    }

    #[test]
    fn every_setting_has_a_description_and_unique_names() {
        let mut names = std::collections::BTreeSet::new();
        for s in all() {
            assert!(!s.description.is_empty(), "{} has no doc comment", s.key);
            for name in [Some(&s.key), Some(&s.env), s.flag.as_ref()]
                .into_iter()
                .flatten()
                .chain(&s.env_aliases)
                .chain(&s.flag_aliases)
            {
                assert!(names.insert(name.clone()), "{name} is used twice");
            }
        }
        let text = render();
        assert!(text.starts_with("-\t-\t--config\tplain\t-\n"), "{text}");
        assert!(
            text.contains("redis_url\tLAYER_MCP_REDIS_URL\t--redis-url\tsecret\t-\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "oauth_code_ttl_secs\tLAYER_MCP_OAUTH_CODE_TTL_SECS\t--oauth-code-ttl-secs\tplain\tLAYER_MCP_OAUTH_CODE_TTL,--oauth-code-ttl\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn oauth_settings_come_from_every_layer_and_their_old_names_still_work() {
        let file = std::env::temp_dir().join(format!("settings-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &file,
            "oauth_idp_client_id = \"from-file\"\noauth_code_ttl_secs = 90\ntrust_forwarded_for = true\n",
        )
        .unwrap();
        let config = load(Some(&file), &env(&[]), &Flags::default());
        let _ = std::fs::remove_file(&file);
        let err = config.unwrap_err();
        assert_eq!(err.setting(), Some("oauth_idp_issuer"), "{err}");

        let mut vars = enabled_oauth();
        vars.extend([
            ("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL", "120"),
            ("LAYER_MCP_OAUTH_REFRESH_TOKEN_TTL", "7200"),
            ("LAYER_MCP_OAUTH_REFRESH_GRACE", "5"),
            ("LAYER_MCP_OAUTH_CODE_TTL", "30"),
            ("LAYER_MCP_OAUTH_REGISTRATIONS_PER_MINUTE", "7"),
            ("LAYER_MCP_TRUST_FORWARDED_FOR", "true"),
            ("LAYER_MCP_STORE", "sqlite://auth.db"),
            ("LAYER_MCP_DATA_DIR", "/tmp/gw"),
        ]);
        let config = load(None, &env(&vars), &Flags::default()).unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        let oauth = &config.oauth;
        assert!(oauth.enabled());
        assert_eq!(
            (
                oauth.oauth_access_token_ttl_secs,
                oauth.oauth_refresh_token_ttl_secs,
                oauth.oauth_refresh_grace_secs,
                oauth.oauth_code_ttl_secs,
                oauth.oauth_registrations_per_minute,
            ),
            (120, 7200, 5, 30, 7)
        );
        assert!(oauth.trust_forwarded_for);
        assert_eq!(
            oauth.store.as_ref().map(|s| s.expose_secret()),
            Some("sqlite://auth.db")
        );
        assert_eq!(oauth.data_dir, Path::new("/tmp/gw"));
        assert_eq!(
            oauth
                .oauth_idp_client_secret
                .as_ref()
                .map(|s| s.expose_secret()),
            Some("client-s3cret")
        );

        // The current name wins over the old one; a flag (old or new name) over both.
        vars.push(("LAYER_MCP_OAUTH_ACCESS_TOKEN_TTL_SECS", "240"));
        let config = load(None, &env(&vars), &Flags::default()).unwrap();
        assert_eq!(config.oauth.oauth_access_token_ttl_secs, 240);
        let given = flags(&[
            "--oauth-access-token-ttl",
            "60",
            "--oauth-code-ttl-secs",
            "10",
        ]);
        let config = load(None, &env(&vars), &given).unwrap();
        assert_eq!(config.oauth.oauth_access_token_ttl_secs, 60);
        assert_eq!(config.oauth.oauth_code_ttl_secs, 10);

        // A bad value under an old name is reported under that name.
        let mut bad = enabled_oauth();
        bad.push(("LAYER_MCP_OAUTH_CODE_TTL", "0"));
        let err = load(None, &env(&bad), &Flags::default()).unwrap_err();
        assert_eq!(err.setting(), Some("oauth_code_ttl_secs"));
        assert!(
            err.to_string().contains("LAYER_MCP_OAUTH_CODE_TTL)"),
            "{err}"
        );
    }

    #[test]
    fn flags_are_built_from_the_definitions() {
        let given = flags(&[
            "--listen",
            "127.0.0.1:4444",
            "--public-url",
            "https://mcp.example.com",
            "--layer-api-url",
            "http://127.0.0.1:9/api/v1",
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--limiter",
            "memory",
            "--oauth-idp-issuer",
            "https://login.example/",
            "--oauth-idp-client-id",
            "gw",
            "--oauth-idp-client-secret",
            "s",
            "--oauth-idp-audience",
            "https://api.example/",
            "--oauth-encryption-key",
            &"ab".repeat(32),
            "--store",
            "sqlite://x.db",
            "--data-dir",
            "/tmp/x",
            "--oauth-refresh-token-ttl",
            "100",
            "--oauth-refresh-grace",
            "3",
            "--oauth-registrations-per-minute",
            "4",
            "--trust-forwarded-for",
        ]);
        let config = load(None, &env(&[]), &given).unwrap();
        assert_eq!(config.listen.port(), 4444);
        assert_eq!(config.mcp_url(), "https://mcp.example.com/mcp");
        assert_eq!(config.caps.store, LimiterStore::InProcess);
        assert!(config.redis_url.is_some());
        let oauth = &config.oauth;
        assert_eq!(
            oauth.oauth_idp_audience.as_deref(),
            Some("https://api.example/")
        );
        assert_eq!(
            (
                oauth.oauth_refresh_token_ttl_secs,
                oauth.oauth_refresh_grace_secs
            ),
            (100, 3)
        );
        assert_eq!(oauth.oauth_registrations_per_minute, 4);
        assert!(oauth.trust_forwarded_for);
        // Without the switch, the environment decides.
        let config = load(
            None,
            &env(&[("LAYER_MCP_TRUST_FORWARDED_FOR", "true")]),
            &flags(&[]),
        )
        .unwrap();
        assert!(config.oauth.trust_forwarded_for);
    }

    #[test]
    fn bad_secret_values_are_named_but_never_shown() {
        // Each value hides "hunter2".
        let refused = |vars: &[(&str, &str)], setting: &str| {
            let err = load(None, &env(vars), &Flags::default()).unwrap_err();
            assert_eq!(err.setting(), Some(setting), "{err}");
            let text = err.to_string();
            let variable = format!("LAYER_MCP_{}", setting.to_ascii_uppercase());
            assert!(
                text.contains(&variable) && !text.contains("hunter2"),
                "{text}"
            );
        };
        refused(
            &[("LAYER_MCP_REDIS_URL", "http://user:hunter2@example.com")],
            "redis_url",
        );
        refused(&[("LAYER_MCP_LIMITER", "rediss//:hunter2@x")], "limiter");
        let mut vars = enabled_oauth();
        vars.push(("LAYER_MCP_OAUTH_ENCRYPTION_KEY", "not-a-key-hunter2"));
        refused(&vars, "oauth_encryption_key");
        // A value of the wrong type in the file: named, not shown.
        let file = std::env::temp_dir().join(format!("settings-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&file, "oauth_idp_client_secret = 31337\n").unwrap();
        let err = load(Some(&file), &env(&[]), &Flags::default()).unwrap_err();
        let _ = std::fs::remove_file(&file);
        assert_eq!(err.setting(), Some("oauth_idp_client_secret"));
        let text = err.to_string();
        assert!(
            text.contains("config file") && !text.contains("31337"),
            "{text}"
        );
        // Plain values are shown, to help.
        let err = load(
            None,
            &env(&[("LAYER_MCP_LISTEN", "nowhere")]),
            &Flags::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"nowhere\""), "{err}");
    }

    // Loading, as `Config::load` does it.

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
        let flags = Flags::default().with("listen", "127.0.0.1:3333");
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

        let flags = Flags::default().with("listen", "not-an-address");
        let err = Config::load(None, &env(&[]), &flags).unwrap_err();
        assert_eq!(err.setting(), Some("listen"));
        assert!(err.to_string().contains("--listen"), "{err}");

        let flags = Flags::default().with("public_url", "https://mcp.example.com/mcp");
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

        let flags = Flags::default().with("limiter", "memory");
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
        let flags = Flags::default().with("redis_url", "http://user:hunter2@example.com");
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
        let flags = Flags::default().with("public_url", "http://localhost:9000");
        let config = Config::load(None, &env(&[]), &flags).unwrap();
        assert_eq!(
            config.allowed_hosts(),
            vec![
                "localhost",
                "localhost:9000",
                "127.0.0.1:9000",
                "[::1]:9000"
            ]
        );
    }

    #[test]
    fn a_non_loopback_public_url_gets_no_loopback_aliases() {
        let flags = Flags::default().with("public_url", "https://mcp.example.com");
        let config = Config::load(None, &env(&[]), &flags).unwrap();
        assert_eq!(config.allowed_hosts(), vec!["mcp.example.com"]);
        let flags = Flags::default().with("public_url", "http://127.0.0.1:8080");
        let config = Config::load(None, &env(&[]), &flags).unwrap();
        assert_eq!(
            config.allowed_hosts(),
            vec![
                "127.0.0.1",
                "127.0.0.1:8080",
                "localhost:8080",
                "[::1]:8080"
            ]
        );
    }
}
