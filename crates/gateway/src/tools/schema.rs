//! Small builders for the JSON Schemas of the tool catalogue. Input schemas stay within what
//! every client's model API accepts (type, properties, required, enum, ranges, format,
//! items, default, description): no `$ref`, no `anyOf` in inputs.

use serde_json::{Map, Value, json};

use crate::errors::error_schema;

pub fn uuid(description: &str) -> Value {
    json!({"type": "string", "format": "uuid", "description": description})
}

pub fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

pub fn string_max(description: &str, max_length: u64) -> Value {
    json!({"type": "string", "maxLength": max_length, "description": description})
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

pub fn enumeration<'a>(description: &str, values: impl IntoIterator<Item = &'a str>) -> Value {
    json!({"type": "string", "enum": values.into_iter().collect::<Vec<_>>(), "description": description})
}

pub fn array(description: &str, items: Value, max_items: Option<u64>) -> Value {
    let mut v = json!({"type": "array", "items": items, "description": description});
    if let Some(max) = max_items {
        v["maxItems"] = json!(max);
    }
    v
}

/// A closed object: the listed properties only.
pub fn object(properties: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut props = Map::new();
    for (name, schema) in properties {
        props.insert(name.to_owned(), schema);
    }
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
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
