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

use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::caps::CapsConfig;
use crate::config::{Config, ENV_PREFIX, OAuthSettings};

mod flags;
mod load;
mod reference;

pub use flags::Flags;
pub use load::load;
pub use reference::{begin_marker, end_marker, markdown, markdown_table, render};

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
mod tests;
