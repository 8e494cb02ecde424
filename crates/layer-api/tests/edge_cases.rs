//! Behaviour the simulator has no reason to exhibit (a proxy's HTML page, deprecation
//! headers, redirects, a relative upload session URI), checked against a small axum server
//! over real HTTP on loopback that records what the client sent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use layer_api::{
    BearerToken, ClientConfig, Error, IdempotencyKey, InferenceRequest, LayerClient,
    ListModelsQuery, ListWorkspacesQuery, RetryPolicy, SignedUrl, UploadBody, WorkspaceId,
};
use serde_json::json;

const WS: &str = "a0000000-0000-4000-8000-000000000001";
const MODEL: &str = "b0000000-0000-4000-8000-000000000001";
const RUN: &str = "c0000000-0000-4000-8000-000000000001";

#[derive(Default)]
struct Seen {
    execute_keys: Vec<Option<String>>,
    user_agents: Vec<String>,
    authorizations: Vec<String>,
    storage_auth: Vec<Option<String>>,
    put_lengths: Vec<(Option<String>, usize)>,
    failures_left: u32,
}

type Shared = Arc<Mutex<Seen>>;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn list_workspaces(State(seen): State<Shared>, headers: HeaderMap) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.user_agents
        .push(header(&headers, "user-agent").unwrap_or_default());
    seen.authorizations
        .push(header(&headers, "authorization").unwrap_or_default());
    (
        [
            ("deprecation", "@1767225600"),
            ("sunset", "Thu, 31 Dec 2026 23:59:59 GMT"),
        ],
        axum::Json(json!({
            "workspaces": [{
                "workspace_id": WS, "slug": "s", "name": "S",
                "balance_creative_units": 10, "reserved_creative_units": 0,
                "available_creative_units": 10, "last_active_at": null
            }],
            "pagination": {"has_more_results": false, "next_cursor": null, "total_count": 1}
        })),
    )
        .into_response()
}

async fn html_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body>Welcome to the captive portal</body></html>",
    )
        .into_response()
}

async fn redirect() -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, "http://127.0.0.1:9/steal")],
    )
        .into_response()
}

async fn execute(State(seen): State<Shared>, headers: HeaderMap) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.execute_keys.push(header(&headers, "idempotency-key"));
    if seen.failures_left > 0 {
        seen.failures_left -= 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html")],
            "<html>upstream down</html>",
        )
            .into_response();
    }
    axum::Json(json!({
        "inference_id": RUN, "status": "in_progress", "poll_interval_seconds": 1,
        "created_at": "2026-01-01T00:00:00Z", "estimated_price_creative_units": 2
    }))
    .into_response()
}

async fn stalled() -> Response {
    tokio::time::sleep(Duration::from_secs(30)).await;
    StatusCode::OK.into_response()
}

async fn upload_start(State(seen): State<Shared>, headers: HeaderMap) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.storage_auth.push(header(&headers, "authorization"));
    if header(&headers, "x-goog-resumable").as_deref() != Some("start") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    // A relative session URI: the client must resolve it against the signed URL.
    (
        StatusCode::CREATED,
        [(header::LOCATION, "/upload/session/1")],
    )
        .into_response()
}

async fn upload_put(State(seen): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut seen = seen.lock().unwrap();
    seen.storage_auth.push(header(&headers, "authorization"));
    seen.put_lengths
        .push((header(&headers, "content-length"), body.len()));
    StatusCode::OK.into_response()
}

async fn serve() -> (String, Shared) {
    let seen: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v1/workspaces", get(list_workspaces))
        .route("/api/v1/workspaces/{ws}", get(html_page))
        .route("/api/v1/workspaces/{ws}/models", get(redirect))
        .route("/api/v1/workspaces/{ws}/inferences", post(execute))
        .route("/api/v1/workspaces/{ws}/inferences/{id}", get(stalled))
        .route("/upload/start", post(upload_start))
        .route("/upload/session/1", put(upload_put))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), seen)
}

fn client(origin: &str) -> LayerClient {
    let mut config = ClientConfig::with_base_url(format!("{origin}/api/v1/").parse().unwrap());
    config.user_agent = "layer-mcp-gateway/test".into();
    config.request_timeout = Duration::from_millis(500);
    config.retry = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(1),
    };
    LayerClient::new(config).unwrap()
}

/// The test caller's token.
fn token() -> &'static BearerToken {
    static TOKEN: LazyLock<BearerToken> =
        LazyLock::new(|| BearerToken::new("edge-secret-token").unwrap());
    &TOKEN
}

fn ws() -> WorkspaceId {
    WS.parse().unwrap()
}

/// A server whose next `failures` executes answer 503, and a client for it.
async fn served(failures: u32) -> (LayerClient, Shared) {
    let (origin, seen) = serve().await;
    seen.lock().unwrap().failures_left = failures;
    (client(&origin), seen)
}

#[tokio::test]
async fn sends_user_agent_and_bearer_and_notes_deprecation_once() {
    let (origin, seen) = serve().await;
    let client = client(&origin);
    for _ in 0..3 {
        let page = client
            .with_token(token())
            .list_workspaces(&ListWorkspacesQuery::default())
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.is_last());
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.user_agents, vec!["layer-mcp-gateway/test"; 3]);
    assert_eq!(seen.authorizations, vec!["Bearer edge-secret-token"; 3]);
    assert_eq!(client.deprecated_endpoints(), vec!["GET /workspaces"]);
}

#[tokio::test]
async fn html_with_a_success_status_is_an_invalid_response() {
    let (client, _) = served(0).await;
    let answer = client.with_token(token()).get_workspace(ws()).await;
    let err = answer.unwrap_err();
    match &err {
        Error::InvalidResponse { status, reason, .. } => {
            assert_eq!(status.as_u16(), 200);
            assert!(reason.contains("text/html"), "{reason}");
        }
        other => panic!("expected InvalidResponse, got {other:?}"),
    }
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (client, _) = served(0).await;
    let api = client.with_token(token());
    let answer = api.list_models(ws(), &ListModelsQuery::default()).await;
    let err = answer.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(302));
}

/// Starts a run of `MODEL` as the test caller, with the caller's own idempotency key if any.
async fn start_run(
    client: &LayerClient,
    key: Option<&str>,
) -> layer_api::Result<layer_api::InferenceStarted> {
    let mut api = client.with_token(token());
    if let Some(key) = key {
        api = api.with_idempotency_key(IdempotencyKey::new(key).unwrap());
    }
    let request = InferenceRequest::new(MODEL.parse().unwrap());
    api.execute_inference(ws(), &request).await
}

#[tokio::test]
async fn retried_post_keeps_its_idempotency_key() {
    let (client, seen) = served(2).await;
    let started = start_run(&client, None).await.unwrap();
    assert_eq!(started.inference_id.to_string(), RUN);
    let keys = seen.lock().unwrap().execute_keys.clone();
    assert_eq!(keys.len(), 3, "two 503s then a success");
    let first = keys[0].clone().expect("an Idempotency-Key is sent");
    assert!(keys.iter().all(|k| k.as_deref() == Some(first.as_str())));

    // A new call gets a new key; a caller's own key is used as given.
    start_run(&client, None).await.unwrap();
    start_run(&client, Some("mcp-request-7")).await.unwrap();
    let keys = seen.lock().unwrap().execute_keys.clone();
    assert_ne!(keys[3], keys[0]);
    assert_eq!(keys[4].as_deref(), Some("mcp-request-7"));
}

#[tokio::test]
async fn gives_up_after_the_configured_attempts() {
    let (client, seen) = served(10).await;
    let err = start_run(&client, None).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    assert!(err.is_retryable());
    assert_eq!(seen.lock().unwrap().execute_keys.len(), 3);
}

#[tokio::test]
async fn a_stalled_answer_times_out_without_leaking_the_token() {
    let (origin, _) = serve().await;
    let mut config = ClientConfig::with_base_url(format!("{origin}/api/v1").parse().unwrap());
    config.request_timeout = Duration::from_millis(200);
    config.retry = RetryPolicy::never();
    let client = LayerClient::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = client
        .with_token(token())
        .get_inference(ws(), RUN.parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!format!("{err} {err:?}").contains("edge-secret-token"));
}

#[tokio::test]
async fn upload_follows_a_relative_location_and_sends_no_bearer_token() {
    let (origin, seen) = serve().await;
    let client = client(&origin);
    let bytes = vec![7u8; 4096];
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    client
        .upload_bytes(
            &SignedUrl::new(format!("{origin}/upload/start?X-Goog-Signature=abc")),
            "image/png",
            UploadBody::from_stream(futures::stream::iter(chunks), 4096),
        )
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.storage_auth, vec![None, None]);
    assert_eq!(seen.put_lengths, vec![(Some("4096".to_owned()), 4096)]);
}

#[tokio::test]
async fn empty_uploads_are_refused_before_anything_is_sent() {
    let (origin, seen) = serve().await;
    let client = client(&origin);
    let err = client
        .upload_bytes(
            &SignedUrl::new(format!("{origin}/upload/start")),
            "image/png",
            UploadBody::from_bytes(Vec::new()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidRequest(_)), "{err:?}");
    assert!(seen.lock().unwrap().storage_auth.is_empty());
}
