//! The GCS-style resumable upload protocol and how uploaded files are used.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns panic on purpose

mod common;

use common::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// Alice asks for an upload URL in ACME.
async fn grant(h: &Harness, content_type: &str, size: usize) -> Value {
    h.post_ok(
        &h.pat("alice"),
        &format!("/workspaces/{ACME}/files/upload-url"),
        &json!({"content_type": content_type, "file_size_bytes": size}),
    )
    .await
}

/// Asks storage to start a resumable upload at a signed URL.
async fn start_session(h: &Harness, url: &str) -> Response {
    let request = h.http.post(url).header("x-goog-resumable", "start");
    request.send().await.unwrap()
}

/// Starts a resumable upload; the session URL.
async fn start(h: &Harness, url: &str) -> String {
    let r = start_session(h, url).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.headers()["location"].to_str().unwrap().to_owned()
}

/// One PUT to an upload session, with `Content-Range` when `range` is given.
async fn put(h: &Harness, session: &str, range: Option<&str>, body: Option<Vec<u8>>) -> Response {
    let mut request = h.http.put(session);
    if let Some(range) = range {
        request = request.header("content-range", range);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request.send().await.unwrap()
}

/// Alice starts a run of `model` in `ws` guided by `file` as a `kind` guidance file.
async fn guided_run(h: &Harness, ws: &str, model: &str, file: Value, kind: &str) -> Response {
    let body = json!({"model_id": model, "prompt": "x", "guidance_files": [{"file_id": file, "type": kind}]});
    let path = format!("/workspaces/{ws}/inferences");
    h.post(&h.pat("alice"), &path, &body, None).await
}

#[tokio::test]
async fn upload_round_trip_returns_the_same_bytes() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let g = grant(&h, "image/png", bytes.len()).await;
    let url = g["upload_url"].as_str().unwrap();
    assert!(url.contains("X-Goog-Signature=") && url.contains("X-Goog-Expires=900"));
    assert_eq!(g["content_type"], "image/png");
    let file = h.upload(&alice, ACME, "image/png", bytes.clone()).await;
    let back = h.fetch(h.url(&format!("/_sim/files/{file}"))).await;
    assert_eq!(back.headers()["x-sim-file-status"], "ready");
    assert_eq!(back.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // Usable as guidance in the same workspace.
    h.post_ok(
        &alice,
        &format!("/workspaces/{ACME}/inferences/estimate"),
        &json!({"model_id": FLUX, "prompt": "x", "guidance_files": [{"file_id": file, "type": "reference_image"}]}),
    )
    .await;
    // Another workspace does not know it.
    let r = guided_run(&h, ALICE_PERSONAL, FLUX, json!(file), "reference_image").await;
    assert_problem(r, StatusCode::NOT_FOUND, "FILE_NOT_FOUND").await;
}

#[tokio::test]
async fn a_wrong_length_is_refused_and_the_file_stays_unusable() {
    let h = Harness::start().await;
    let g = grant(&h, "image/png", 10).await;
    let session = start(&h, g["upload_url"].as_str().unwrap()).await;
    let r = put(&h, &session, None, Some(vec![0u8; 9])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("<Error>"));
    // The right length afterwards does not revive it.
    let r = put(&h, &session, None, Some(vec![0u8; 10])).await;
    assert_eq!(r.status(), StatusCode::GONE);
    let file = g["file_id"].as_str().unwrap();
    let r = guided_run(&h, ACME, FLUX, json!(file), "reference_image").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "guidance_files", 0, "file_id"])
    );
    assert_eq!(h.state().await["counters"]["runs_created"], 0);
}

#[tokio::test]
async fn a_file_not_yet_uploaded_is_refused() {
    let h = Harness::start().await;
    let g = grant(&h, "image/webp", 10).await;
    let r = guided_run(&h, ACME, FLUX_FILL, g["file_id"].clone(), "init_image").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = "0f000000-0000-4000-8000-00000000000f";
    let r = guided_run(&h, ACME, FLUX_FILL, json!(unknown), "init_image").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chunked_upload_reports_progress_until_complete() {
    let h = Harness::start().await;
    let g = grant(&h, "audio/wav", 20).await;
    let session = start(&h, g["upload_url"].as_str().unwrap()).await;
    let r = put(&h, &session, Some("bytes 0-9/20"), Some(vec![1u8; 10])).await;
    assert_eq!(r.status().as_u16(), 308);
    assert_eq!(r.headers()["range"], "bytes=0-9");
    let r = put(&h, &session, Some("bytes */20"), None).await;
    assert_eq!(r.status().as_u16(), 308);
    let r = put(&h, &session, Some("bytes 10-19/20"), Some(vec![2u8; 10])).await;
    assert_eq!(r.status(), StatusCode::OK);
    let obj: Value = r.json().await.unwrap();
    assert_eq!(obj["size"], "20");
    let back = h
        .fetch(h.url(&format!("/_sim/files/{}", g["file_id"].as_str().unwrap())))
        .await;
    let mut expected = vec![1u8; 10];
    expected.extend([2u8; 10]);
    assert_eq!(back.bytes().await.unwrap().as_ref(), expected.as_slice());
}

#[tokio::test]
async fn signed_url_is_checked_and_types_and_sizes_are_limited() {
    let h = Harness::start().await;
    let alice = h.pat("alice");
    let g = grant(&h, "image/png", 10).await;
    let url = g["upload_url"].as_str().unwrap();
    let forged = format!("{}0", url);
    let r = start_session(&h, &forged).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = h.http.post(url).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "needs x-goog-resumable"
    );
    let r = h
        .http
        .post(url)
        .header("x-goog-resumable", "start")
        .header("content-type", "image/jpeg")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "content type must match the grant"
    );

    let path = format!("/workspaces/{ACME}/files/upload-url");
    for body in [
        json!({"content_type": "application/pdf", "file_size_bytes": 10}),
        json!({"content_type": "image/png", "file_size_bytes": 0}),
        json!({"content_type": "audio/mpeg", "file_size_bytes": 65 * 1024 * 1024}),
        json!({"content_type": "audio/wav", "file_size_bytes": 10, "source_type": "mask"}),
        json!({"file_size_bytes": 10}),
    ] {
        let r = h.post(&alice, &path, &body, None).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    // 5 GiB of MP4 is allowed.
    let big = h
        .post(
            &alice,
            &path,
            &json!({"content_type": "video/mp4", "file_size_bytes": 5u64 * 1024 * 1024 * 1024}),
            None,
        )
        .await;
    assert_eq!(big.status(), StatusCode::OK);
}
