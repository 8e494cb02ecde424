//! `Idempotency-Key` on creating POSTs: the same user, key and request get the stored answer
//! again; the same key with another request gets 409. Keys are kept 24 hours.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, ValidationItem};
use crate::state::{IDEMPOTENCY_TTL, IdemRecord, Inner, UserIdx};

/// The `Idempotency-Key` header, validated (1-255 visible ASCII characters).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ApiError::validation(
            ValidationItem::new(
                vec![json!("header"), json!("idempotency-key")],
                "value_error",
                "Value error, Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
            .input(json!(key)),
        ));
    }
    Ok(Some(key.to_owned()))
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                out.insert(k.clone(), canonical(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// What identifies "the same request" for an idempotency key: method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &Value) -> [u8; 32] {
    let digest = Sha256::new()
        .chain_update(method.as_bytes())
        .chain_update(b" ")
        .chain_update(path.as_bytes())
        .chain_update(b"\n")
        .chain_update(canonical(body).to_string().as_bytes())
        .finalize();
    digest.into()
}

/// A stored answer for this key, or 409 when the key was used for a different request.
pub fn idempotent_replay(
    inner: &mut Inner,
    user: UserIdx,
    key: Option<&str>,
    fp: &[u8; 32],
) -> Result<Option<Response>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let map_key = (user, key.to_owned());
    if inner
        .idempotency
        .get(&map_key)
        .is_some_and(|r| r.stored_at.elapsed() > IDEMPOTENCY_TTL)
    {
        inner.idempotency.remove(&map_key);
    }
    let Some(record) = inner.idempotency.get(&map_key) else {
        return Ok(None);
    };
    if &record.fingerprint != fp {
        inner.counters.idempotency_conflicts += 1;
        return Err(ApiError::IdempotencyKeyReused);
    }
    let status = StatusCode::from_u16(record.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(record.body.clone())).into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    inner.counters.idempotent_replays += 1;
    Ok(Some(response))
}

/// Remembers a successful answer for this key.
pub fn idempotent_store(
    inner: &mut Inner,
    user: UserIdx,
    key: Option<&str>,
    fp: [u8; 32],
    body: &Value,
) {
    if let Some(key) = key {
        inner.idempotency.insert(
            (user, key.to_owned()),
            IdemRecord {
                fingerprint: fp,
                status: 200,
                body: body.clone(),
                stored_at: std::time::Instant::now(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_key_order() {
        let a = fingerprint("POST", "/x", &json!({"a": 1, "b": {"c": 2, "d": 3}}));
        let b = fingerprint("POST", "/x", &json!({"b": {"d": 3, "c": 2}, "a": 1}));
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("POST", "/y", &json!({"a": 1})));
    }
}
