//! The JSON Schemas of the tool catalogue. Input schemas are derived with `schemars` from
//! each tool's argument struct ([`input`]) and stay within what every client's model API
//! accepts (type, properties, required, enum, ranges, format, items, default, description):
//! subschemas inline (no `$ref`/`$defs`, which Gemini CLI and others handle badly), no
//! `anyOf` or `null` in inputs. Output schemas are written with the small builders below.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::errors::error_schema;

/// The input schema of a tool whose arguments are `T`.
pub fn input<T: JsonSchema>() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.inline_subschemas = true;
    settings.meta_schema = None;
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
    }
    portable(&mut schema);
    schema
}

/// Rewrites a derived schema into the portable dialect: an absent optional argument is
/// simply left out, so `null` is neither offered nor a default; Rust's number formats (`int64`, `double`…)
/// say nothing to a model; a closed object lists its `required` even when empty.
fn portable(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(branches)) = obj.get("anyOf")
        && branches.len() == 2
        && let Some(kept) = branches
            .iter()
            .find(|b| b.get("type") != Some(&json!("null")))
    {
        let kept = kept.clone();
        obj.remove("anyOf");
        if let Value::Object(kept) = kept {
            for (k, v) in kept {
                obj.entry(k).or_insert(v);
            }
        }
    }
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".to_owned(), only);
        }
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    if obj.get("default") == Some(&Value::Null) {
        obj.remove("default");
    }
    if obj
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| !matches!(f, "uuid" | "uri" | "date-time"))
    {
        obj.remove("format");
    }
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        obj.entry("properties").or_insert_with(|| json!({}));
        obj.entry("required").or_insert_with(|| json!([]));
    }
    if let Some(Value::Object(properties)) = obj.get_mut("properties") {
        properties.values_mut().for_each(portable);
    }
    if let Some(items) = obj.get_mut("items") {
        portable(items);
    }
}

pub fn uuid(description: &str) -> Value {
    json!({"type": "string", "format": "uuid", "description": description})
}

pub fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

pub fn integer(
    description: &str,
    minimum: i64,
    maximum: Option<i64>,
    default: Option<i64>,
) -> Value {
    let mut v = json!({"type": "integer", "minimum": minimum, "description": description});
    if let Some(max) = maximum {
        v["maximum"] = json!(max);
    }
    if let Some(d) = default {
        v["default"] = json!(d);
    }
    v
}

pub fn number(description: &str, minimum: Option<f64>, maximum: Option<f64>) -> Value {
    let mut v = json!({"type": "number", "description": description});
    if let Some(min) = minimum {
        v["minimum"] = json!(min);
    }
    if let Some(max) = maximum {
        v["maximum"] = json!(max);
    }
    v
}

pub fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

pub fn array(description: &str, items: Value, max_items: Option<u64>) -> Value {
    let mut v = json!({"type": "array", "items": items, "description": description});
    if let Some(max) = max_items {
        v["maxItems"] = json!(max);
    }
    v
}

/// An object that may carry more than the listed properties (upstream records, which gain
/// fields over time).
pub fn open_object(properties: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut props = Map::new();
    for (name, schema) in properties {
        props.insert(name.to_owned(), schema);
    }
    json!({"type": "object", "properties": props, "required": required})
}

/// A nullable variant of a schema, spelled as `anyOf` branches with one `type` each (more
/// portable than `type: [T, "null"]` for clients that map schemas onto single-type dialects).
pub fn nullable(mut schema: Value) -> Value {
    let description = schema.as_object_mut().and_then(|o| o.remove("description"));
    let mut out = json!({"anyOf": [schema, {"type": "null"}]});
    if let Some(d) = description {
        out["description"] = d;
    }
    out
}

/// A tool's output schema: its success shape, or the error shape of an `isError` result
/// (clients validate `structuredContent` of errors too).
pub fn output(success: Value) -> Value {
    json!({"type": "object", "anyOf": [success, error_schema()]})
}

/// The pagination fields listings add.
pub fn pagination_properties() -> Vec<(&'static str, Value)> {
    vec![
        (
            "next_cursor",
            nullable(string(
                "Pass as `cursor` to get the next page; null on the last page.",
            )),
        ),
        ("has_more_results", boolean("Whether another page follows.")),
        (
            "total_count",
            nullable(integer(
                "Total number of matching items, when Layer knows it.",
                0,
                None,
                None,
            )),
        ),
    ]
}
