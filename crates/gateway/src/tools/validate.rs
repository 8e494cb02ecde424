//! Checks tool arguments against the tool's own input schema before the handler runs, so the
//! published schema and what is accepted cannot drift apart. Covers the subset the catalogue
//! uses: `type`, `properties`, `required`, `additionalProperties: false`, `enum`, `minimum`,
//! `maximum`, `maxLength`, `maxItems`, `items`, `format: uuid`. Messages name the argument
//! by its path (`guidance_files[0].type`) and say what is expected.

use serde_json::{Map, Value};

use super::args::id_hint;
use crate::errors::ToolError;

/// Validates `args` against `schema` (an object schema).
pub fn validate(schema: &Value, args: &Map<String, Value>) -> Result<(), ToolError> {
    check_object(schema, args, "")
}

fn path_join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

fn check_object(schema: &Value, object: &Map<String, Value>, path: &str) -> Result<(), ToolError> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if object.get(name).is_none_or(Value::is_null) {
                let full = path_join(path, name);
                let property = properties.and_then(|p| p.get(name));
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
                return Err(ToolError::invalid(format!("`{full}` is required{hint}")));
            }
        }
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        let allowed: Vec<&str> = properties
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut unknown: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
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
            return Err(ToolError::invalid(format!(
                "Unknown argument{} {} in {where_}, which takes: {takes}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|k| format!("`{}`", path_join(path, k)))
                    .collect::<Vec<_>>()
                    .join(", "),
            )));
        }
    }
    if let Some(properties) = properties {
        for (name, value) in object {
            if let Some(sub) = properties.get(name)
                && !value.is_null()
            {
                check_value(sub, value, &path_join(path, name), name)?;
            }
        }
    }
    Ok(())
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "string" => value.is_string(),
        "integer" => {
            value.as_i64().is_some()
                || value.as_u64().is_some()
                || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        _ => true,
    }
}

fn article(kind: &str) -> &'static str {
    match kind {
        "integer" | "array" | "object" => "an",
        _ => "a",
    }
}

fn check_value(schema: &Value, value: &Value, path: &str, key: &str) -> Result<(), ToolError> {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        let wanted = types
            .iter()
            .filter(|t| **t != "null")
            .map(|t| format!("{} {t}", article(t)))
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(ToolError::invalid(format!("`{path}` must be {wanted}")));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let listed = allowed
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>();
        return Err(ToolError::invalid(format!(
            "`{path}` must be one of: {}; got {value}",
            listed.join(", ")
        )));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(ToolError::invalid(format!(
                "`{path}` must be at least {}, got {value}",
                show(min)
            )));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(ToolError::invalid(format!(
                "`{path}` must be at most {}, got {value}",
                show(max)
            )));
        }
    }
    if let Some(text) = value.as_str() {
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && text.chars().count() as u64 > max
        {
            return Err(ToolError::invalid(format!(
                "`{path}` must be at most {max} characters"
            )));
        }
        if schema.get("format").and_then(Value::as_str) == Some("uuid")
            && uuid::Uuid::try_parse(text.trim()).is_err()
        {
            let shown: String = text.chars().take(64).collect();
            return Err(ToolError::invalid(format!(
                "`{path}` must be a UUID like 3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f, got {shown:?}: {}",
                id_hint(key)
            )));
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            return Err(ToolError::invalid(format!(
                "`{path}` takes at most {max} items, got {}",
                items.len()
            )));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check_value(item_schema, item, &format!("{path}[{i}]"), key)?;
            }
        }
    }
    if let Some(object) = value.as_object()
        && schema.get("properties").is_some()
    {
        check_object(schema, object, path)?;
    }
    Ok(())
}

fn show(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::schema::{array, enumeration, integer, object, string_max, uuid};
    use serde_json::json;

    fn schema() -> Value {
        object(
            vec![
                ("workspace_id", uuid("ws")),
                ("batch_size", integer("n", 1, Some(16), Some(4))),
                ("prompt", string_max("p", 5)),
                (
                    "guidance_files",
                    array(
                        "g",
                        object(
                            vec![
                                ("file_id", uuid("f")),
                                ("type", enumeration("t", ["init_image", "pose"])),
                            ],
                            &["file_id", "type"],
                        ),
                        Some(2),
                    ),
                ),
            ],
            &["workspace_id"],
        )
    }

    fn check(v: Value) -> Result<(), String> {
        validate(&schema(), v.as_object().unwrap()).map_err(|e| e.message.clone())
    }

    #[test]
    fn accepts_good_arguments() {
        check(json!({"workspace_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", "batch_size": 2,
                     "guidance_files": [{"file_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f", "type": "pose"}]}))
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
                json!({"workspace_id": "abc"}),
                "`workspace_id` must be a UUID",
            ),
            (
                json!({"workspace_id": ws, "batch_size": 17}),
                "`batch_size` must be at most 16",
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
                "Unknown argument `extra`",
            ),
            (
                json!({"workspace_id": ws, "guidance_files": [{"file_id": ws, "type": "x"}]}),
                "`guidance_files[0].type` must be one of: init_image, pose",
            ),
            (
                json!({"workspace_id": ws, "guidance_files": [{"type": "pose"}]}),
                "`guidance_files[0].file_id` is required",
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
