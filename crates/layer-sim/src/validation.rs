//! Request validation that answers the way FastAPI/pydantic does: every problem found, each as
//! a `{loc, msg, type, input, ctx}` item, in one 422.

use serde_json::{Map, Value, json};

use crate::problem::{ApiError, ValidationItem};

/// What a field must hold.
#[derive(Clone, Debug)]
pub enum Check {
    Bool,
    Int {
        gt: Option<i64>,
        ge: Option<i64>,
        le: Option<i64>,
    },
    Float {
        gt: Option<f64>,
        ge: Option<f64>,
        le: Option<f64>,
    },
    Str {
        min_len: Option<usize>,
        max_len: Option<usize>,
    },
    HexColor,
    Enum(&'static [&'static str]),
    Uuid,
    List {
        item: Box<Check>,
        min: Option<usize>,
        max: Option<usize>,
    },
    Object(Vec<Field>),
    /// Any JSON object.
    Dict,
}

/// One field of an object schema.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: &'static str,
    pub check: Check,
    pub required: bool,
}

impl Field {
    pub fn opt(name: &'static str, check: Check) -> Self {
        Self {
            name,
            check,
            required: false,
        }
    }

    pub fn req(name: &'static str, check: Check) -> Self {
        Self {
            name,
            check,
            required: true,
        }
    }
}

// Shorthands for schema tables.
pub fn int() -> Check {
    Check::Int {
        gt: None,
        ge: None,
        le: None,
    }
}
pub fn int_gt0() -> Check {
    Check::Int {
        gt: Some(0),
        ge: None,
        le: None,
    }
}
pub fn int_range(ge: i64, le: Option<i64>) -> Check {
    Check::Int {
        gt: None,
        ge: Some(ge),
        le,
    }
}
pub fn float() -> Check {
    Check::Float {
        gt: None,
        ge: None,
        le: None,
    }
}
pub fn float_gt0() -> Check {
    Check::Float {
        gt: Some(0.0),
        ge: None,
        le: None,
    }
}
pub fn float_range(ge: f64, le: f64) -> Check {
    Check::Float {
        gt: None,
        ge: Some(ge),
        le: Some(le),
    }
}
pub fn string(max_len: Option<usize>) -> Check {
    Check::Str {
        min_len: None,
        max_len,
    }
}
pub fn list(item: Check, max: Option<usize>) -> Check {
    Check::List {
        item: Box::new(item),
        min: None,
        max,
    }
}

/// Parses a request body as FastAPI would before validating it.
pub fn parse_json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(
            ValidationItem::new(vec![json!("body")], "missing", "Field required")
                .input(Value::Null),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let offset = byte_offset(bytes, e.line(), e.column());
        ApiError::validation(
            ValidationItem::new(
                vec![json!("body"), json!(offset)],
                "json_invalid",
                "JSON decode error",
            )
            .input(json!({}))
            .ctx(json!({ "error": e.to_string() })),
        )
    })
}

fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut current_line = 1;
    for (i, b) in bytes.iter().enumerate() {
        if current_line == line {
            return (i + column.saturating_sub(1)).min(bytes.len());
        }
        if *b == b'\n' {
            current_line += 1;
        }
    }
    bytes.len()
}

/// Parses a JSON request body and validates it as an object with `fields`.
pub fn body_object(bytes: &[u8], fields: &[Field]) -> Result<Map<String, Value>, ApiError> {
    let body = parse_json_body(bytes)?;
    let mut errors = Vec::new();
    validate_object(&body, fields, &[json!("body")], &mut errors);
    finish(errors)?;
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::Internal("validated body is not an object".into())),
    }
}

/// Validates `value` as an object with `fields`, appending every problem to `errors`.
pub fn validate_object(
    value: &Value,
    fields: &[Field],
    loc: &[Value],
    errors: &mut Vec<ValidationItem>,
) {
    let Some(map) = value.as_object() else {
        errors.push(
            ValidationItem::new(
                loc.to_vec(),
                "model_attributes_type",
                "Input should be a valid dictionary or object to extract fields from",
            )
            .input(value.clone()),
        );
        return;
    };
    for field in fields {
        let mut field_loc = loc.to_vec();
        field_loc.push(json!(field.name));
        match map.get(field.name) {
            None if field.required => {
                errors.push(
                    ValidationItem::new(field_loc, "missing", "Field required")
                        .input(Value::Object(map.clone())),
                );
            }
            None => {}
            Some(Value::Null) if !field.required => {}
            Some(v) => check_value(v, &field.check, &field_loc, errors),
        }
    }
}

/// The first of the bounds `n` breaks, as pydantic reports it: error type, message, context.
fn broken_bound<T>(
    n: T,
    gt: Option<T>,
    ge: Option<T>,
    le: Option<T>,
) -> Option<(&'static str, String, Value)>
where
    T: PartialOrd + Copy + std::fmt::Display + serde::Serialize,
{
    if let Some(gt) = gt
        && n <= gt
    {
        Some((
            "greater_than",
            format!("Input should be greater than {gt}"),
            json!({ "gt": gt }),
        ))
    } else if let Some(ge) = ge
        && n < ge
    {
        Some((
            "greater_than_equal",
            format!("Input should be greater than or equal to {ge}"),
            json!({ "ge": ge }),
        ))
    } else if let Some(le) = le
        && n > le
    {
        Some((
            "less_than_equal",
            format!("Input should be less than or equal to {le}"),
            json!({ "le": le }),
        ))
    } else {
        None
    }
}

/// Validates one value against a check.
pub fn check_value(value: &Value, check: &Check, loc: &[Value], errors: &mut Vec<ValidationItem>) {
    let mut push = |kind: &str, msg: String, ctx: Option<Value>| {
        let mut item = ValidationItem::new(loc.to_vec(), kind, msg).input(value.clone());
        if let Some(ctx) = ctx {
            item = item.ctx(ctx);
        }
        errors.push(item);
    };
    match check {
        Check::Bool => {
            if as_bool(value).is_none() {
                if value.is_string() {
                    push(
                        "bool_parsing",
                        "Input should be a valid boolean, unable to interpret input".into(),
                        None,
                    );
                } else {
                    push("bool_type", "Input should be a valid boolean".into(), None);
                }
            }
        }
        Check::Int { gt, ge, le } => match as_int(value) {
            Ok(n) => {
                if let Some((kind, msg, ctx)) = broken_bound(n, *gt, *ge, *le) {
                    push(kind, msg, Some(ctx));
                }
            }
            Err((kind, msg)) => push(kind, msg.into(), None),
        },
        Check::Float { gt, ge, le } => match as_float(value) {
            Some(x) => {
                if let Some((kind, msg, ctx)) = broken_bound(x, *gt, *ge, *le) {
                    push(kind, msg, Some(ctx));
                }
            }
            None if value.is_string() => push(
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number".into(),
                None,
            ),
            None => push("float_type", "Input should be a valid number".into(), None),
        },
        Check::Str { min_len, max_len } => match value.as_str() {
            Some(s) => {
                let len = s.chars().count();
                if let Some(max) = max_len
                    && len > *max
                {
                    push(
                        "string_too_long",
                        format!("String should have at most {max} characters"),
                        Some(json!({ "max_length": max })),
                    );
                } else if let Some(min) = min_len
                    && len < *min
                {
                    push(
                        "string_too_short",
                        format!(
                            "String should have at least {min} character{}",
                            if *min == 1 { "" } else { "s" }
                        ),
                        Some(json!({ "min_length": min })),
                    );
                }
            }
            None => push("string_type", "Input should be a valid string".into(), None),
        },
        Check::HexColor => match value.as_str() {
            Some(s) if is_hex_color(s) => {}
            Some(_) => push(
                "string_pattern_mismatch",
                "String should match pattern '^#([0-9A-Fa-f]{3}){1,2}$'".into(),
                Some(json!({ "pattern": "^#([0-9A-Fa-f]{3}){1,2}$" })),
            ),
            None => push("string_type", "Input should be a valid string".into(), None),
        },
        Check::Enum(allowed) => {
            if !value.as_str().is_some_and(|s| allowed.contains(&s)) {
                let expected = expected_list(allowed);
                push(
                    "enum",
                    format!("Input should be {expected}"),
                    Some(json!({ "expected": expected })),
                );
            }
        }
        Check::Uuid => match value.as_str() {
            Some(s) => {
                if let Err(e) = uuid::Uuid::parse_str(s) {
                    push(
                        "uuid_parsing",
                        format!("Input should be a valid UUID, {e}"),
                        Some(json!({ "error": e.to_string() })),
                    );
                }
            }
            None => push(
                "uuid_type",
                "UUID input should be a string, bytes or UUID object".into(),
                None,
            ),
        },
        Check::List { item, min, max } => match value.as_array() {
            Some(items) => {
                if let Some(max) = max
                    && items.len() > *max
                {
                    push(
                        "too_long",
                        format!(
                            "List should have at most {max} items after validation, not {}",
                            items.len()
                        ),
                        Some(
                            json!({"field_type": "List", "max_length": max, "actual_length": items.len()}),
                        ),
                    );
                    return;
                }
                if let Some(min) = min
                    && items.len() < *min
                {
                    push(
                        "too_short",
                        format!(
                            "List should have at least {min} item{} after validation, not {}",
                            if *min == 1 { "" } else { "s" },
                            items.len()
                        ),
                        Some(
                            json!({"field_type": "List", "min_length": min, "actual_length": items.len()}),
                        ),
                    );
                    return;
                }
                for (i, v) in items.iter().enumerate() {
                    let mut item_loc = loc.to_vec();
                    item_loc.push(json!(i));
                    check_value(v, item, &item_loc, errors);
                }
            }
            None => push("list_type", "Input should be a valid list".into(), None),
        },
        Check::Object(fields) => validate_object(value, fields, loc, errors),
        Check::Dict => {
            if !value.is_object() {
                push(
                    "dict_type",
                    "Input should be a valid dictionary".into(),
                    None,
                );
            }
        }
    }
}

fn expected_list(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn is_hex_color(s: &str) -> bool {
    let Some(hex) = s.strip_prefix('#') else {
        return false;
    };
    matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Lax boolean: JSON booleans, 0/1, and the strings pydantic accepts.
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
            "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Lax integer: integral numbers and numeric strings.
pub fn as_int(value: &Value) -> Result<i64, (&'static str, &'static str)> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64() {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Ok(f as i64)
                } else {
                    Err((
                        "int_from_float",
                        "Input should be a valid integer, got a number with a fractional part",
                    ))
                }
            } else {
                Err(("int_type", "Input should be a valid integer"))
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| {
            (
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            )
        }),
        _ => Err(("int_type", "Input should be a valid integer")),
    }
}

/// Lax number: numbers and numeric strings.
pub fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Reads an optional field once validation has passed.
pub fn get<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

pub fn get_int(map: &Map<String, Value>, name: &str) -> Option<i64> {
    get(map, name).and_then(|v| as_int(v).ok())
}

pub fn get_float(map: &Map<String, Value>, name: &str) -> Option<f64> {
    get(map, name).and_then(as_float)
}

pub fn get_bool(map: &Map<String, Value>, name: &str) -> Option<bool> {
    get(map, name).and_then(as_bool)
}

pub fn get_str<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    get(map, name).and_then(Value::as_str)
}

/// Turns collected items into the 422, or passes.
pub fn finish(errors: Vec<ValidationItem>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_problem_like_fastapi() {
        let fields = vec![
            Field::req("model_id", Check::Uuid),
            Field::opt("batch_size", int_range(1, Some(16))),
            Field::opt("quality", Check::Enum(&["low", "medium", "high"])),
        ];
        let mut errors = Vec::new();
        validate_object(
            &json!({"batch_size": 17, "quality": "ultra"}),
            &fields,
            &[json!("body")],
            &mut errors,
        );
        let kinds: Vec<&str> = errors.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["missing", "less_than_equal", "enum"]);
        assert_eq!(errors[1].loc, vec![json!("body"), json!("batch_size")]);
        assert_eq!(errors[2].msg, "Input should be 'low', 'medium' or 'high'");
    }

    #[test]
    fn invalid_json_names_a_position() {
        let Err(ApiError::Validation(items)) = parse_json_body(b"{\"a\": }") else {
            panic!("expected a validation error");
        };
        assert_eq!(items[0].kind, "json_invalid");
    }
}
