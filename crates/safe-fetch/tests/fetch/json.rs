use safe_fetch::{FetchError, FetchPolicy, SafeFetcher};
use serde::Deserialize;

use crate::server::{Reply, TestServer};
use crate::{allowing, refusal};

#[derive(Debug, Deserialize)]
struct ClientMetadata {
    client_id: String,
    redirect_uris: Vec<String>,
}

async fn metadata_server() -> TestServer {
    TestServer::start(|request| {
        let doc = |id: &str| {
            format!(r#"{{"client_id":"{id}","client_name":"Demo","redirect_uris":["https://app.example.com/cb"]}}"#)
        };
        match request.path.as_str() {
            "/client.json" => Reply::Full {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "application/json; charset=utf-8".into()),
                    ("Cache-Control".into(), "max-age=600".into()),
                ],
                body: doc("https://app.example.com/client.json").into_bytes(),
            },
            "/vendor.json" => Reply::ok("application/oauth-client+json", doc("x")),
            "/page" => Reply::ok("text/html", "<html></html>"),
            "/broken.json" => Reply::ok("application/json", "{\"client_id\":"),
            "/moved.json" => Reply::redirect(301, "/client.json"),
            "/big.json" => Reply::ok("application/json", format!("[{}0]", "0,".repeat(40_000))),
            _ => Reply::status(404),
        }
    })
    .await
}

#[tokio::test]
async fn a_metadata_document_is_fetched_and_parsed() {
    let server = metadata_server().await;
    let fetcher = SafeFetcher::new(allowing(&server));

    let doc = fetcher
        .fetch_json::<ClientMetadata>(&server.url("/client.json"))
        .await
        .unwrap();
    assert_eq!(doc.value.client_id, "https://app.example.com/client.json");
    assert_eq!(doc.value.redirect_uris, ["https://app.example.com/cb"]);
    assert_eq!(doc.url.as_str(), server.url("/client.json"));
    assert_eq!(doc.cache_control.as_deref(), Some("max-age=600"));

    let doc = fetcher
        .fetch_json::<serde_json::Value>(&server.url("/vendor.json"))
        .await
        .unwrap();
    assert_eq!(doc.value["client_id"], "x");
}

#[tokio::test]
async fn metadata_fetches_are_strict() {
    let server = metadata_server().await;
    let fetcher = SafeFetcher::new(allowing(&server));
    let get = |path: &'static str| {
        let fetcher = fetcher.clone();
        let url = server.url(path);
        async move {
            fetcher
                .fetch_json::<serde_json::Value>(&url)
                .await
                .unwrap_err()
        }
    };

    let err = get("/page").await;
    assert!(
        matches!(err, FetchError::NotJsonContentType { .. }),
        "{err}"
    );
    let err = get("/broken.json").await;
    assert!(matches!(err, FetchError::InvalidJson { .. }), "{err}");
    // No redirects for metadata documents, even to the same allow-listed server.
    let err = get("/moved.json").await;
    assert!(
        matches!(err, FetchError::RedirectNotAllowed { .. }),
        "{err}"
    );
    // The JSON cap (64 KiB by default) is much smaller than the download cap.
    let err = get("/big.json").await;
    assert!(
        matches!(err, FetchError::DeclaredTooLarge { limit: 65536, .. }),
        "{err}"
    );
    let err = get("/gone.json").await;
    assert!(matches!(err, FetchError::Status { .. }), "{err}");
}

#[tokio::test]
async fn metadata_fetches_get_the_same_address_checks() {
    let fetcher = SafeFetcher::new(FetchPolicy::default());
    for url in [
        "https://10.0.0.1/client.json",
        "https://[::1]/client.json",
        "https://169.254.169.254/latest/meta-data/",
    ] {
        let err = fetcher
            .fetch_json::<serde_json::Value>(url)
            .await
            .unwrap_err();
        refusal(&err);
    }
}
