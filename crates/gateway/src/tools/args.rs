//! Reading tool arguments. Every check happens before any upstream call, and every refusal is
//! an `INVALID_INPUTS` naming the argument and saying what a good value looks like.

use std::str::FromStr;

use layer_api::{IdempotencyKey, InvalidId};
use serde_json::{Map, Value};

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

/// The arguments of one tool call.
#[derive(Debug, Clone, Default)]
pub struct Args {
    map: Map<String, Value>,
}

impl Args {
    /// Takes the raw arguments, refusing names the tool does not take.
    pub fn parse(raw: Option<Map<String, Value>>, allowed: &[&str]) -> Result<Self, ToolError> {
        let map = raw.unwrap_or_default();
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            let takes = if allowed.is_empty() {
                "no arguments".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(ToolError::invalid(format!(
                "Unknown argument{} {}: this tool takes {takes}",
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Self { map })
    }

    fn present(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The raw value, if given.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.present(key)
    }

    /// A required id (UUID).
    pub fn id<T>(&self, key: &str) -> Result<T, ToolError>
    where
        T: FromStr<Err = InvalidId>,
    {
        match self.present(key) {
            None => Err(ToolError::invalid(format!(
                "`{key}` is required: {}",
                id_hint(key)
            ))),
            Some(value) => parse_id(key, value),
        }
    }

    /// An optional id (UUID).
    pub fn opt_id<T>(&self, key: &str) -> Result<Option<T>, ToolError>
    where
        T: FromStr<Err = InvalidId>,
    {
        self.present(key).map(|v| parse_id(key, v)).transpose()
    }

    /// An optional string of at most `max_chars` characters; empty counts as absent.
    pub fn opt_string(&self, key: &str, max_chars: usize) -> Result<Option<String>, ToolError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) if s.chars().count() > max_chars => Err(ToolError::invalid(
                format!("`{key}` must be at most {max_chars} characters"),
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ToolError::invalid(format!("`{key}` must be a string"))),
        }
    }

    /// A required non-empty string.
    pub fn string(&self, key: &str, max_chars: usize) -> Result<String, ToolError> {
        self.opt_string(key, max_chars)?
            .ok_or_else(|| ToolError::invalid(format!("`{key}` is required")))
    }

    /// An optional integer within `min..=max`.
    pub fn opt_int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ToolError> {
        match self.present(key) {
            None => Ok(None),
            Some(value) => {
                let n = value
                    .as_i64()
                    .or_else(|| {
                        value
                            .as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                    .ok_or_else(|| ToolError::invalid(format!("`{key}` must be an integer")))?;
                if n < min || n > max {
                    return Err(ToolError::invalid(format!(
                        "`{key}` must be between {min} and {max}, got {n}"
                    )));
                }
                Ok(Some(n))
            }
        }
    }

    /// An optional value of a tolerant Layer enum, which must be one of its known values.
    pub fn opt_enum<E>(
        &self,
        key: &str,
        known: &[E],
        as_str: fn(&E) -> &str,
    ) -> Result<Option<E>, ToolError>
    where
        E: Clone,
    {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => known
                .iter()
                .find(|k| as_str(k).eq_ignore_ascii_case(s.trim()))
                .cloned()
                .map(Some)
                .ok_or_else(|| {
                    ToolError::invalid(format!(
                        "`{key}` must be one of {}, got {s:?}",
                        known
                            .iter()
                            .map(|k| as_str(k).to_owned())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
            Some(_) => Err(ToolError::invalid(format!("`{key}` must be a string"))),
        }
    }

    /// An optional JSON object.
    pub fn opt_object(&self, key: &str) -> Result<Option<Map<String, Value>>, ToolError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map.clone())),
            Some(_) => Err(ToolError::invalid(format!("`{key}` must be an object"))),
        }
    }

    /// An optional list of strings.
    pub fn opt_strings(
        &self,
        key: &str,
        max_items: usize,
    ) -> Result<Option<Vec<String>>, ToolError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > max_items {
                    return Err(ToolError::invalid(format!(
                        "`{key}` takes at most {max_items} items"
                    )));
                }
                items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| {
                            ToolError::invalid(format!("`{key}` must be a list of strings"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
            Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(_) => Err(ToolError::invalid(format!(
                "`{key}` must be a list of strings"
            ))),
        }
    }

    /// The optional `idempotency_key` of the execute tools.
    pub fn idempotency_key(&self) -> Result<Option<IdempotencyKey>, ToolError> {
        self.opt_string("idempotency_key", 255)?
            .map(|k| {
                IdempotencyKey::new(k).map_err(|_| {
                    ToolError::invalid("`idempotency_key` must be 1 to 255 visible ASCII characters without spaces")
                })
            })
            .transpose()
    }
}

fn parse_id<T>(key: &str, value: &Value) -> Result<T, ToolError>
where
    T: FromStr<Err = InvalidId>,
{
    let Value::String(text) = value else {
        return Err(ToolError::invalid(format!(
            "`{key}` must be a UUID string: {}",
            id_hint(key)
        )));
    };
    text.trim().parse::<T>().map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        ToolError::invalid(format!(
            "`{key}` must be a UUID like 3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f, got {shown:?}: {}",
            id_hint(key)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Code;
    use layer_api::WorkspaceId;
    use serde_json::json;

    fn args(v: Value, allowed: &[&str]) -> Result<Args, ToolError> {
        Args::parse(v.as_object().cloned(), allowed)
    }

    #[test]
    fn unknown_arguments_are_named() {
        let e = args(json!({"workspace_id": "x", "colour": 1}), &["workspace_id"]).unwrap_err();
        assert_eq!(e.code, Code::InvalidInputs);
        assert!(
            e.message.contains("`colour`") && e.message.contains("workspace_id"),
            "{}",
            e.message
        );
    }

    #[test]
    fn ids_are_validated_with_a_hint() {
        let a = args(json!({"workspace_id": "not-a-uuid"}), &["workspace_id"]).unwrap();
        let e = a.id::<WorkspaceId>("workspace_id").unwrap_err();
        assert!(
            e.message.contains("list_workspaces") && e.message.contains("not-a-uuid"),
            "{}",
            e.message
        );
        let a = args(json!({}), &["workspace_id"]).unwrap();
        assert!(
            a.id::<WorkspaceId>("workspace_id")
                .unwrap_err()
                .message
                .contains("required")
        );
        let a = args(json!({"workspace_id": 7}), &["workspace_id"]).unwrap();
        assert!(a.id::<WorkspaceId>("workspace_id").is_err());
        let a = args(
            json!({"workspace_id": "3f2b9c1e-7d4a-4e8b-9c2d-1a2b3c4d5e6f"}),
            &["workspace_id"],
        )
        .unwrap();
        assert!(a.id::<WorkspaceId>("workspace_id").is_ok());
    }

    #[test]
    fn ranges_strings_and_enums() {
        let a = args(
            json!({"limit": 0, "n": 3.0, "s": "", "q": "HIGH"}),
            &["limit", "n", "s", "q"],
        )
        .unwrap();
        assert!(
            a.opt_int("limit", 1, 100)
                .unwrap_err()
                .message
                .contains("between 1 and 100")
        );
        assert_eq!(a.opt_int("n", 1, 5).unwrap(), Some(3));
        assert_eq!(a.opt_string("s", 10).unwrap(), None);
        let q = a
            .opt_enum("q", layer_api::Quality::KNOWN, layer_api::Quality::as_str)
            .unwrap();
        assert_eq!(q, Some(layer_api::Quality::High));
        let a = args(json!({"q": "ultra"}), &["q"]).unwrap();
        assert!(
            a.opt_enum("q", layer_api::Quality::KNOWN, layer_api::Quality::as_str)
                .unwrap_err()
                .message
                .contains("low, medium, high")
        );
    }
}
