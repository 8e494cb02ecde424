//! The storage side of uploads and outputs. Uploads follow Google Cloud Storage's resumable
//! protocol on a signed URL (`POST` with `x-goog-resumable: start` -> 201 + `Location`, then
//! `PUT` the bytes, whole or in `Content-Range` chunks); errors are GCS-style XML. Outputs are
//! served from `/cdn/{file_id}/{name}` without credentials, like signed CDN links.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::files::UPLOAD_URL_TTL_SECS;
use crate::api::query_pairs;
use crate::ids::{FileId, WorkspaceId, hex};
use crate::problem::ApiError;
use crate::state::{FileContent, FileStatus, Sim};

pub const BUCKET: &str = "layer-sim-uploads";
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

fn signature(sim: &Sim, file: FileId, date: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"layer-sim storage signer")
        .chain_update(sim.config.seed.to_be_bytes())
        .chain_update(file.0.as_bytes())
        .chain_update(date.as_bytes())
        .finalize();
    hex(&digest)
}

/// A V4-signed-looking URL that may start one resumable upload for 15 minutes.
pub fn signed_upload_url(sim: &Sim, ws: WorkspaceId, file: FileId, now: DateTime<Utc>) -> String {
    let date = now.format(DATE_FORMAT).to_string();
    let day = now.format("%Y%m%d");
    format!(
        "{}/storage/{BUCKET}/{ws}/{file}?X-Goog-Algorithm=GOOG4-RSA-SHA256\
         &X-Goog-Credential=layer-sim-signer%40layer-sim.iam.gserviceaccount.com%2F{day}%2Fauto%2Fstorage%2Fgoog4_request\
         &X-Goog-Date={date}&X-Goog-Expires={UPLOAD_URL_TTL_SECS}\
         &X-Goog-SignedHeaders=content-type%3Bhost%3Bx-goog-resumable&X-Goog-Signature={}",
        sim.public,
        signature(sim, file, &date)
    )
}

fn xml_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (
        status,
        [(header::CONTENT_TYPE, "application/xml; charset=UTF-8")],
        body,
    )
        .into_response()
}

fn parse_ids(ws: &str, file: &str) -> Option<(WorkspaceId, FileId)> {
    Some((
        WorkspaceId(uuid::Uuid::parse_str(ws).ok()?),
        FileId(uuid::Uuid::parse_str(file).ok()?),
    ))
}

/// `POST /storage/{bucket}/{ws}/{file}?X-Goog-...` with `x-goog-resumable: start`.
pub async fn start_upload(
    State(sim): State<Arc<Sim>>,
    Path((bucket, ws, file)): Path<(String, String, String)>,
    raw: RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some((ws_id, file_id)) = parse_ids(&ws, &file).filter(|_| bucket == BUCKET) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    let pairs = query_pairs(&raw);
    let q = |k: &str| {
        crate::api::query_one(&pairs, k)
            .unwrap_or_default()
            .to_owned()
    };
    let date = q("X-Goog-Date");
    if q("X-Goog-Signature") != signature(&sim, file_id, &date) {
        return xml_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let expires = q("X-Goog-Expires").parse::<i64>().unwrap_or(0);
    let signed_at = NaiveDateTime::parse_from_str(&date, DATE_FORMAT).map(|d| d.and_utc());
    if signed_at.map_or(true, |t| {
        t + chrono::Duration::seconds(expires) < Utc::now()
    }) {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "ExpiredToken",
            "Invalid argument: the signed URL has expired.",
        );
    }
    if !headers
        .get("x-goog-resumable")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("start"))
    {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "This URL starts resumable uploads: send x-goog-resumable: start.",
        );
    }
    let mut inner = sim.lock();
    let Some(rec) = inner.files.get(&file_id).filter(|f| f.workspace == ws_id) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    if rec.status == FileStatus::Failed {
        return xml_error(
            StatusCode::GONE,
            "UploadFailed",
            "This upload failed; request a new upload URL.",
        );
    }
    if let Some(sent) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && !sent.trim().eq_ignore_ascii_case(&rec.content_type)
    {
        return xml_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "Content-Type differs from the one the URL was signed for.",
        );
    }
    let upload_id = sim.ids.token("upload-session");
    inner.upload_sessions.insert(upload_id.clone(), file_id);
    let location = format!(
        "{}/storage/{BUCKET}/{ws_id}/{file_id}?upload_id={upload_id}",
        sim.public
    );
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&upload_id) {
        response.headers_mut().insert("x-guploader-uploadid", v);
    }
    response
}

enum Range {
    /// No `Content-Range`: the whole file.
    Whole,
    /// `bytes a-b/total` (total `None` for `*`).
    Chunk {
        first: u64,
        last: u64,
        total: Option<u64>,
    },
    /// `bytes */total`: how far has the upload got?
    Query,
}

fn parse_range(headers: &HeaderMap) -> Option<Range> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Some(Range::Whole);
    };
    let v = v.to_str().ok()?.trim().strip_prefix("bytes ")?;
    let (span, total) = v.split_once('/')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    if span == "*" {
        return Some(Range::Query);
    }
    let (a, b) = span.split_once('-')?;
    Some(Range::Chunk {
        first: a.parse().ok()?,
        last: b.parse().ok()?,
        total,
    })
}

/// `PUT` on a session URI: the bytes, whole or a chunk.
pub async fn put_upload(
    State(sim): State<Arc<Sim>>,
    raw: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let pairs = query_pairs(&raw);
    let Some(upload_id) = crate::api::query_one(&pairs, "upload_id").map(str::to_owned) else {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "PUT the bytes to the session URI from Location.",
        );
    };
    let Some(range) = parse_range(&headers) else {
        return xml_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "Malformed Content-Range.",
        );
    };
    let (file_id, declared, received_len) = {
        let inner = sim.lock();
        let Some(file_id) = inner.upload_sessions.get(&upload_id).copied() else {
            return xml_error(
                StatusCode::NOT_FOUND,
                "NoSuchUpload",
                "No such upload session.",
            );
        };
        let Some(rec) = inner.files.get(&file_id) else {
            return xml_error(
                StatusCode::NOT_FOUND,
                "NoSuchUpload",
                "No such upload session.",
            );
        };
        let FileContent::Upload {
            declared_size,
            received,
            ..
        } = &rec.content
        else {
            return xml_error(
                StatusCode::NOT_FOUND,
                "NoSuchUpload",
                "No such upload session.",
            );
        };
        match rec.status {
            FileStatus::Failed => {
                return xml_error(
                    StatusCode::GONE,
                    "UploadFailed",
                    "This upload failed; request a new upload URL.",
                );
            }
            FileStatus::Ready if !matches!(range, Range::Query) => {
                return object_json(&sim, rec.workspace, file_id, rec.size(), &rec.content_type);
            }
            _ => {}
        }
        (file_id, *declared_size, received.len() as u64)
    };
    let remaining = declared.saturating_sub(received_len);
    let bytes = axum::body::to_bytes(body, (remaining as usize).saturating_add(1))
        .await
        .ok();
    let mut inner = sim.lock();
    let Some(rec) = inner.files.get_mut(&file_id) else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "No such upload session.",
        );
    };
    let ws = rec.workspace;
    let content_type = rec.content_type.clone();
    let FileContent::Upload { received, .. } = &mut rec.content else {
        return xml_error(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "No such upload session.",
        );
    };
    let fail = |rec_status: &mut FileStatus, received: &mut Vec<u8>, msg: String| {
        *rec_status = FileStatus::Failed;
        received.clear();
        xml_error(StatusCode::BAD_REQUEST, "InvalidArgument", &msg)
    };
    match range {
        Range::Query => {
            if rec.status == FileStatus::Ready {
                let size = received.len() as u64;
                return object_json(&sim, ws, file_id, size, &content_type);
            }
            resume_incomplete(received.len() as u64)
        }
        Range::Whole => {
            let got = bytes.as_ref().map_or(declared + 1, |b| b.len() as u64);
            if got != declared || received_len != 0 {
                return fail(
                    &mut rec.status,
                    received,
                    format!(
                        "Upload of {got} bytes does not match the declared file_size_bytes {declared}; the file is unusable."
                    ),
                );
            }
            received.extend_from_slice(bytes.as_deref().unwrap_or_default());
            rec.status = FileStatus::Ready;
            object_json(&sim, ws, file_id, declared, &content_type)
        }
        Range::Chunk { first, last, total } => {
            let Some(bytes) = bytes else {
                return fail(
                    &mut rec.status,
                    received,
                    format!(
                        "More bytes than the declared file_size_bytes {declared}; the file is unusable."
                    ),
                );
            };
            if total.is_some_and(|t| t != declared) {
                return fail(
                    &mut rec.status,
                    received,
                    format!(
                        "Content-Range total differs from the declared file_size_bytes {declared}; the file is unusable."
                    ),
                );
            }
            if first != received.len() as u64
                || last < first
                || last - first + 1 != bytes.len() as u64
            {
                return xml_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "Content-Range does not continue the upload or does not match the body length.",
                );
            }
            received.extend_from_slice(&bytes);
            if received.len() as u64 == declared {
                rec.status = FileStatus::Ready;
                object_json(&sim, ws, file_id, declared, &content_type)
            } else {
                rec.status = FileStatus::Uploading;
                resume_incomplete(received.len() as u64)
            }
        }
    }
}

fn resume_incomplete(have: u64) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if have > 0
        && let Ok(v) = HeaderValue::from_str(&format!("bytes=0-{}", have - 1))
    {
        response.headers_mut().insert(header::RANGE, v);
    }
    response
}

fn object_json(
    sim: &Sim,
    ws: WorkspaceId,
    file: FileId,
    size: u64,
    content_type: &str,
) -> Response {
    let body = json!({
        "kind": "storage#object",
        "bucket": BUCKET,
        "name": format!("{ws}/{file}"),
        "size": size.to_string(),
        "contentType": content_type,
        "selfLink": format!("{}/storage/{BUCKET}/{ws}/{file}", sim.public),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `GET /cdn/{file_id}/{name}`: an output file (`output.<ext>`) or its preview (`preview.png`).
pub async fn serve_file(
    State(sim): State<Arc<Sim>>,
    Path((file, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = uuid::Uuid::parse_str(&file).map_err(|_| ApiError::FileNotFound)?;
    let (bytes, content_type) = {
        let inner = sim.lock();
        let rec = inner.files.get(&FileId(id)).ok_or(ApiError::FileNotFound)?;
        match (&rec.content, name.starts_with("preview")) {
            (
                FileContent::Output {
                    preview: Some(p), ..
                },
                true,
            ) => (p.clone(), "image/png".to_owned()),
            (FileContent::Output { media, .. }, false) => (media.clone(), rec.content_type.clone()),
            _ => return Err(ApiError::FileNotFound),
        }
    };
    // Rendering a large image takes a moment: do it off the async workers.
    let data = tokio::task::spawn_blocking(move || bytes.render())
        .await
        .map_err(|e| ApiError::Internal(format!("rendering failed: {e}")))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CACHE_CONTROL,
                "public, max-age=86400, immutable".to_owned(),
            ),
        ],
        data,
    )
        .into_response())
}
