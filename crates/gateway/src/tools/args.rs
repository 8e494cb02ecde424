//! Reading tool arguments into each tool's argument struct, after
//! [`super::validate::ArgumentCheck`] has checked them against the published schema. What the
//! schema cannot say (an optional text left blank counts as absent, a `limit` of `20.0` is
//! 20) is said here with serde helpers; a refusal is an `INVALID_INPUTS` naming the argument.

use layer_api::{Cursor, IdempotencyKey, PageLimit};
use rmcp::model::JsonObject;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::errors::ToolError;

/// Where an agent finds a valid value of an id argument.
pub(crate) fn id_hint(key: &str) -> &'static str {
    match key {
        "workspace_id" => "take one from list_workspaces",
        "model_id" => "take one from list_models or get_model_recommendations",
        "workflow_id" => "take one from list_workflows",
        "run_id" => "use the run_id returned by execute_workflow",
        "inference_id" => "use the inference_id returned by execute_forge",
        "file_id" => "use a file_id returned by upload_file or request_file_upload_url",
        _ => "a UUID",
    }
}

/// Reads checked arguments into `T`.
pub fn read<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(arguments))
        .map_err(|e| ToolError::invalid(format!("The arguments do not form a valid request: {e}")))
}

/// An optional text where blank means absent (`#[serde(default, deserialize_with)]`).
pub fn non_blank<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(text.filter(|s| !s.trim().is_empty()))
}

/// An optional integer that may arrive as an integral float (`20.0`), as some clients send.
pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(value) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    value
        .as_i64()
        .or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        })
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{value} is not an integer")))
}

/// The schema of an id argument: a UUID string.
pub fn uuid(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "uuid"})
}

/// The schema of a free-form object (workflow inputs, a composition plan).
pub fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object"})
}

/// Layer's tolerant string enums, for schemas listing their known values.
pub trait Known: 'static {
    fn names() -> Vec<&'static str>;
}

macro_rules! known {
    ($($t:ty),+ $(,)?) => {$(
        impl Known for $t {
            fn names() -> Vec<&'static str> {
                <$t>::KNOWN.iter().map(<$t>::as_str).collect()
            }
        }
    )+};
}

known!(
    layer_api::AudioOutputFormat,
    layer_api::FileSourceType,
    layer_api::GuidanceFileType,
    layer_api::MeshDensity,
    layer_api::PoseMode,
    layer_api::Quality,
    layer_api::SegmentBy,
    layer_api::SegmentLevel,
    layer_api::SegmentTarget,
    layer_api::SubtitleAlignment,
    layer_api::TextureResolution,
    layer_api::VideoEffectType,
);

/// The schema of a string that must be one of `E`'s known values.
pub fn one_of<E: Known>(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": E::names()})
}

/// A page size, when given (the schema bounds it to 1..=100).
pub fn page_limit(limit: Option<i64>) -> Result<Option<PageLimit>, ToolError> {
    limit
        .map(|n| {
            PageLimit::new(u32::try_from(n).unwrap_or(100))
                .map_err(|e| ToolError::invalid(format!("`limit`: {e}")))
        })
        .transpose()
}

/// A pagination cursor, when given.
pub fn cursor(cursor: Option<String>) -> Result<Option<Cursor>, ToolError> {
    match cursor {
        Some(c) if c.chars().count() > 4096 => Err(ToolError::invalid(
            "`cursor` must be at most 4096 characters",
        )),
        c => Ok(c.map(Cursor::new)),
    }
}

/// The optional `idempotency_key` of the execute tools.
pub fn idempotency_key(key: Option<String>) -> Result<Option<IdempotencyKey>, ToolError> {
    key.map(|k| {
        IdempotencyKey::new(k).map_err(|_| {
            ToolError::invalid(
                "`idempotency_key` must be 1 to 255 visible ASCII characters without spaces",
            )
        })
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "non_blank")]
        text: Option<String>,
        #[serde(default, deserialize_with = "integer")]
        count: Option<i64>,
    }

    fn sample(v: Value) -> Result<Sample, ToolError> {
        read(v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn blanks_are_absent_and_integral_floats_are_integers() {
        let s = sample(json!({"text": "  ", "count": 3.0})).unwrap();
        assert_eq!(s.text, None);
        assert_eq!(s.count, Some(3));
        let s = sample(json!({"text": "x", "count": null})).unwrap();
        assert_eq!(s.text.as_deref(), Some("x"));
        assert_eq!(s.count, None);
        assert!(sample(json!({"count": 2.5})).is_err());
    }

    #[test]
    fn limits_cursors_and_keys() {
        assert!(page_limit(Some(20)).unwrap().is_some());
        assert!(cursor(Some("x".repeat(4097))).is_err());
        assert!(idempotency_key(Some("has space".into())).is_err());
        assert!(idempotency_key(Some("k-1".into())).unwrap().is_some());
    }
}
