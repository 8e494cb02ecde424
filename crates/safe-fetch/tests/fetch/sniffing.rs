use safe_fetch::SniffedType;

use crate::fixture;
use crate::server::{Reply, TestServer};

#[tokio::test]
async fn the_type_comes_from_the_bytes_not_the_header() {
    let server = TestServer::start(|request| {
        let name = request.path.trim_start_matches('/');
        if name == "page" {
            let html = "<!DOCTYPE html>\n<html><head><title>Not found</title></head>\
                        <body><p>Sorry.</p></body></html>";
            return Reply::ok("image/png", html);
        }
        // Every file is served with the same generic (or wrong) type.
        Reply::ok("application/octet-stream", fixture(name))
    })
    .await;
    let fetcher = crate::fetcher_allowing(&server);

    for (file, want, mime) in [
        ("image.png", SniffedType::Png, "image/png"),
        ("image.jpg", SniffedType::Jpeg, "image/jpeg"),
        ("image.webp", SniffedType::Webp, "image/webp"),
        ("image.gif", SniffedType::Gif, "image/gif"),
        ("video.mp4", SniffedType::Mp4, "video/mp4"),
    ] {
        let fetched = fetcher
            .fetch(&server.url(&format!("/{file}")))
            .await
            .unwrap();
        assert_eq!(fetched.sniffed, want, "{file}");
        assert_eq!(fetched.sniffed.mime(), Some(mime));
        assert_eq!(fetched.bytes, fixture(file));
        assert_eq!(
            fetched.content_type_header.as_deref(),
            Some("application/octet-stream")
        );
    }

    // An HTML page that claims to be a PNG is still an HTML page.
    let page = fetcher.fetch(&server.url("/page")).await.unwrap();
    assert_eq!(page.sniffed, SniffedType::Html);
    assert_eq!(page.sniffed.to_string(), "HTML page");
    assert_eq!(page.content_type_header.as_deref(), Some("image/png"));
}
