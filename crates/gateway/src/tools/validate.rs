//! Checks tool arguments against the tool's own input schema before the handler runs, so the
//! published schema and what is accepted cannot drift apart. The checking is `jsonschema`'s
//! (one validator compiled per tool at start); this module adds what the agent reads: the
//! first problem, in the order the arguments are written, named by its path
//! (`guidance_files[0].type`) with what is expected.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use rmcp::model::JsonObject;
use serde_json::Value;

use super::args::id_hint;
use crate::errors::ToolError;

/// One tool's compiled input schema.
pub struct ArgumentCheck {
    validator: Validator,
    schema: Value,
}

impl ArgumentCheck {
    /// Compiles `schema`. Formats: `uuid` is checked as the ids parse (hyphenated, surrounding
    /// blanks ignored); `uri` is left to the download, which explains a refusal better.
    pub fn new(schema: &Value) -> Result<Self, String> {
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .with_format("uuid", |text: &str| {
                let text = text.trim();
                text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
            })
            .with_format("uri", |_: &str| true)
            .build(schema)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            validator,
            schema: schema.clone(),
        })
    }

    /// The arguments, if valid; an absent value (`null`) counts as not given.
    pub fn check(&self, mut arguments: JsonObject) -> Result<JsonObject, ToolError> {
        drop_nulls(&self.schema, &mut arguments);
        let instance = Value::Object(arguments);
        if self.validator.is_valid(&instance) {
            let Value::Object(arguments) = instance else {
                return Ok(JsonObject::new());
            };
            return Ok(arguments);
        }
        let first = self
            .validator
            .iter_errors(&instance)
            .map(|e| (order(&e), e))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, e)| self.message(&e))
            .unwrap_or_else(|| "The arguments do not match the tool's input schema".to_owned());
        Err(ToolError::invalid(first))
    }

    fn message(&self, error: &ValidationError<'_>) -> String {
        let segments: Vec<Segment> = error.instance_path().iter().map(Segment::from).collect();
        let path = show_path(&segments);
        let key = segments
            .iter()
            .rev()
            .find_map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .unwrap_or("");
        let here = schema_at(&self.schema, &segments);
        let value = error.instance();
        match error.kind() {
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let full = join(&path, name);
                let property = here
                    .and_then(|s| s.get("properties"))
                    .and_then(|p| p.get(name));
                let hint = match property {
                    Some(s) if s.get("format").and_then(Value::as_str) == Some("uuid") => {
                        format!(": {}", id_hint(name))
                    }
                    Some(s) => s
                        .get("description")
                        .and_then(Value::as_str)
                        .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
                        .unwrap_or_default(),
                    None => String::new(),
                };
                format!("`{full}` is required{hint}")
            }
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let allowed: Vec<&str> = here
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let mut unknown: Vec<&str> = unexpected.iter().map(String::as_str).collect();
                unknown.sort_unstable();
                let where_ = if path.is_empty() {
                    "this tool".to_owned()
                } else {
                    format!("`{path}`")
                };
                let takes = if allowed.is_empty() {
                    "no arguments".to_owned()
                } else {
                    allowed.join(", ")
                };
                format!(
                    "Unknown argument{} {} in {where_}, which takes: {takes}",
                    if unknown.len() > 1 { "s" } else { "" },
                    unknown
                        .iter()
                        .map(|k| format!("`{}`", join(&path, k)))
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            ValidationErrorKind::Type { kind } => {
                let types: Vec<String> = match kind {
                    TypeKind::Single(t) => vec![t.to_string()],
                    TypeKind::Multiple(ts) => ts.iter().map(|t| t.to_string()).collect(),
                };
                let wanted = types
                    .iter()
                    .filter(|t| *t != "null")
                    .map(|t| format!("{} {t}", article(t)))
                    .collect::<Vec<_>>()
                    .join(" or ");
                format!("`{path}` must be {wanted}")
            }
            ValidationErrorKind::Enum { options } => {
                let listed = options
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|v| !v.is_null())
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect::<Vec<_>>();
                format!(
                    "`{path}` must be one of: {}; got {value}",
                    listed.join(", ")
                )
            }
            ValidationErrorKind::Minimum { limit } => {
                format!("`{path}` must be at least {}, got {value}", show(limit))
            }
            ValidationErrorKind::Maximum { limit } => {
                format!("`{path}` must be at most {}, got {value}", show(limit))
            }
            ValidationErrorKind::MaxLength { limit } => {
                format!("`{path}` must be at most {limit} characters")
            }
            ValidationErrorKind::MaxItems { limit } => format!(
                "`{path}` takes at most {limit} items, got {}",
                value.as_array().map_or(0, Vec::len)
            ),
            ValidationErrorKind::Format { format } if format == "uuid" => {
                let shown: String = value
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .take(64)
                    .collect();
                format!(
                    "`{path}` must be a UUID like 3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f, got {shown:?}: {}",
                    id_hint(key)
                )
            }
            _ if path.is_empty() => format!("The arguments are not valid: {error}"),
            _ => format!("`{path}` is not valid: {error}"),
        }
    }
}

/// Removes `null` values from the objects the schema describes: a client that sends
/// `"limit": null` means "no limit given".
fn drop_nulls(schema: &Value, object: &mut JsonObject) {
    object.retain(|_, v| !v.is_null());
    let Some(properties) = schema.get("properties") else {
        return;
    };
    for (name, value) in object.iter_mut() {
        if let Some(sub) = properties.get(name) {
            drop_nulls_in(sub, value);
        }
    }
}

fn drop_nulls_in(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(object) if schema.get("properties").is_some() => drop_nulls(schema, object),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                items.iter_mut().for_each(|i| drop_nulls_in(item_schema, i));
            }
        }
        _ => {}
    }
}

/// A step of an argument's path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    Key(String),
    Index(usize),
}

impl From<LocationSegment<'_>> for Segment {
    fn from(segment: LocationSegment<'_>) -> Self {
        match segment {
            LocationSegment::Property(k) => Segment::Key(k.into_owned()),
            LocationSegment::Index(i) => Segment::Index(i),
        }
    }
}

/// Which problem to report first: the one an argument-by-argument reading meets first (an
/// object's missing and unknown arguments before its values; a list's length before its
/// items), so the agent fixes the arguments in order.
fn order(error: &ValidationError<'_>) -> (Vec<Segment>, u8) {
    let rank = match error.kind() {
        ValidationErrorKind::Required { .. } => 0,
        ValidationErrorKind::AdditionalProperties { .. } => 1,
        ValidationErrorKind::Type { .. } => 2,
        ValidationErrorKind::Enum { .. } => 3,
        ValidationErrorKind::Minimum { .. } => 4,
        ValidationErrorKind::Maximum { .. } => 5,
        ValidationErrorKind::MaxLength { .. } => 6,
        ValidationErrorKind::Format { .. } => 7,
        ValidationErrorKind::MaxItems { .. } => 8,
        _ => 9,
    };
    (
        error.instance_path().iter().map(Segment::from).collect(),
        rank,
    )
}

fn show_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// The subschema describing the value at `segments`.
fn schema_at<'s>(schema: &'s Value, segments: &[Segment]) -> Option<&'s Value> {
    segments
        .iter()
        .try_fold(schema, |s, segment| match segment {
            Segment::Key(k) => s.get("properties")?.get(k),
            Segment::Index(_) => s.get("items"),
        })
}

fn article(kind: &str) -> &'static str {
    match kind {
        "integer" | "array" | "object" => "an",
        _ => "a",
    }
}

fn show(limit: &Value) -> String {
    match limit.as_f64() {
        Some(n) if n.fract() == 0.0 => format!("{}", n as i64),
        Some(n) => n.to_string(),
        None => limit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["workspace_id"],
            "properties": {
                "workspace_id": {"type": "string", "format": "uuid", "description": "ws"},
                "batch_size": {"type": "integer", "minimum": 1, "maximum": 16, "default": 4, "description": "n"},
                "prompt": {"type": "string", "maxLength": 5, "description": "p"},
                "guidance_files": {
                    "type": "array",
                    "maxItems": 2,
                    "description": "g",
                    "items": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["file_id", "type"],
                        "properties": {
                            "file_id": {"type": "string", "format": "uuid", "description": "f"},
                            "type": {"type": "string", "enum": ["init_image", "pose"], "description": "t"}
                        }
                    }
                }
            }
        })
    }

    fn check(v: Value) -> Result<(), String> {
        ArgumentCheck::new(&schema())
            .unwrap()
            .check(v.as_object().unwrap().clone())
            .map(|_| ())
            .map_err(|e| e.message.clone())
    }

    #[test]
    fn accepts_good_arguments() {
        check(json!({"workspace_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", "batch_size": 2,
                     "guidance_files": [{"file_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", "type": "pose"}]}))
        .unwrap();
        check(
            json!({"workspace_id": " 3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f ", "batch_size": 2.0,
                     "prompt": null}),
        )
        .unwrap();
    }

    #[test]
    fn names_what_is_wrong() {
        let ws = "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f";
        let cases = [
            (
                json!({}),
                "`workspace_id` is required: take one from list_workspaces",
            ),
            (
                json!({"workspace_id": null}),
                "`workspace_id` is required: take one from list_workspaces",
            ),
            (
                json!({"workspace_id": "abc"}),
                "`workspace_id` must be a UUID",
            ),
            (
                json!({"workspace_id": "{3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f}"}),
                "`workspace_id` must be a UUID",
            ),
            (
                json!({"workspace_id": ws, "batch_size": 17}),
                "`batch_size` must be at most 16",
            ),
            (
                json!({"workspace_id": ws, "batch_size": 0}),
                "`batch_size` must be at least 1, got 0",
            ),
            (
                json!({"workspace_id": ws, "batch_size": "2"}),
                "`batch_size` must be an integer",
            ),
            (
                json!({"workspace_id": ws, "prompt": "toolong"}),
                "`prompt` must be at most 5 characters",
            ),
            (
                json!({"workspace_id": ws, "extra": 1}),
                "Unknown argument `extra` in this tool, which takes: batch_size, guidance_files, prompt, workspace_id",
            ),
            (
                json!({"workspace_id": ws, "guidance_files": [{"file_id": ws, "type": "x"}]}),
                "`guidance_files[0].type` must be one of: init_image, pose; got \"x\"",
            ),
            (
                json!({"workspace_id": ws, "guidance_files": [{"type": "pose"}]}),
                "`guidance_files[0].file_id` is required",
            ),
            (
                json!({"workspace_id": ws, "guidance_files": [{"file_id": ws, "type": "pose", "w": 1}]}),
                "Unknown argument `guidance_files[0].w` in `guidance_files[0]`",
            ),
            (
                json!({"workspace_id": ws, "guidance_files": [{}, {}, {}]}),
                "takes at most 2 items",
            ),
        ];
        for (args, expected) in cases {
            let message = check(args.clone()).unwrap_err();
            assert!(message.contains(expected), "{args}: {message}");
        }
    }
}
