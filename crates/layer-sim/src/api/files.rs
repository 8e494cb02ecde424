//! `POST /workspaces/{ws}/files/upload-url`: a file id and a signed, GCS-style resumable upload
//! URL on the simulator (see `storage`).

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use http::HeaderMap;
use serde_json::{Value, json};

use super::{JsonBytes, RawPath, create_once, fingerprint, idempotency_key, workspace_id};
use crate::auth::Caller;
use crate::ids::FileId;
use crate::problem::{ApiError, ValidationItem, loc};
use crate::schemas;
use crate::state::{FileContent, FileRec, FileStatus, Sim};
use crate::storage::signed_upload_url;
use crate::validation::{body_object, finish, get_int, get_str};

const MIB: u64 = 1024 * 1024;

/// Content types the upload endpoint accepts, with their size limits.
pub const UPLOAD_LIMITS: &[(&str, u64)] = &[
    ("image/png", 100 * MIB),
    ("image/jpeg", 100 * MIB),
    ("image/webp", 100 * MIB),
    ("video/mp4", 5 * 1024 * MIB),
    ("audio/wav", 64 * MIB),
    ("audio/mpeg", 64 * MIB),
];

/// How long a signed upload URL can start an upload.
pub const UPLOAD_URL_TTL_SECS: i64 = 15 * 60;

pub async fn request_upload_url(
    State(sim): State<Arc<Sim>>,
    Caller(user): Caller,
    path: RawPath,
    headers: HeaderMap,
    JsonBytes(bytes): JsonBytes,
) -> Result<Response, ApiError> {
    let ws_id = workspace_id(&path)?;
    let key = idempotency_key(&headers)?;
    let map = body_object(&bytes, schemas::upload_url())?;
    let content_type = get_str(&map, "content_type")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let size = get_int(&map, "file_size_bytes").unwrap_or(0).max(0) as u64;
    let source_type = get_str(&map, "source_type").map(str::to_owned);
    let mut errors = Vec::new();
    match UPLOAD_LIMITS.iter().find(|(t, _)| *t == content_type) {
        None => {
            let allowed: Vec<&str> = UPLOAD_LIMITS.iter().map(|(t, _)| *t).collect();
            errors.push(
                ValidationItem::new(
                    loc(&["body", "content_type"]),
                    "value_error",
                    format!(
                        "Value error, content type is not accepted; allowed: {}",
                        allowed.join(", ")
                    ),
                )
                .input(json!(content_type)),
            );
        }
        Some((_, limit)) if size > *limit => errors.push(
            ValidationItem::new(
                loc(&["body", "file_size_bytes"]),
                "less_than_equal",
                format!("Input should be less than or equal to {limit} for {content_type}"),
            )
            .input(json!(size))
            .ctx(json!({"le": limit})),
        ),
        Some(_) => {}
    }
    if source_type.as_deref() == Some("mask") && !content_type.starts_with("image/") {
        errors.push(
            ValidationItem::new(
                loc(&["body", "source_type"]),
                "value_error",
                "Value error, a mask upload must be an image",
            )
            .input(json!("mask")),
        );
    }
    finish(errors)?;
    let fp = fingerprint(
        "POST",
        &format!("/workspaces/{ws_id}/files/upload-url"),
        &Value::Object(map.clone()),
    );

    create_once(&sim, user, ws_id, key.as_deref(), fp, |inner| {
        let file_id = FileId(sim.ids.next("upload"));
        let now = Utc::now();
        inner.files.insert(
            file_id,
            FileRec {
                id: file_id,
                workspace: ws_id,
                content_type: content_type.clone(),
                status: FileStatus::AwaitingUpload,
                content: FileContent::Upload {
                    declared_size: size,
                    file_name: get_str(&map, "file_name").map(str::to_owned),
                    source_type: source_type.clone(),
                    received: Vec::new(),
                },
            },
        );
        inner.counters.upload_urls_created += 1;
        inner.touch(user, ws_id);
        let response = json!({
            "file_id": file_id,
            "upload_url": signed_upload_url(&sim, ws_id, file_id, now),
            "content_type": content_type,
            "source_type": source_type,
        });
        Ok(response)
    })
}
