use safe_fetch::{BlockedRange, FetchError, FetchPolicy, Refusal, SafeFetcher, StaticResolver};

use crate::server::{Reply, TestServer};
use crate::{allowing, fixture};

/// Redirects to whatever the path says: `/to?<url>`.
async fn redirector() -> TestServer {
    TestServer::start(|request| {
        let target = request.path.strip_prefix("/to?").unwrap_or("/");
        Reply::redirect(302, target)
    })
    .await
}

fn redirect_refusal(err: &FetchError) -> (usize, &str, &Refusal) {
    match err {
        FetchError::RedirectRefused { hop, to, refusal } => (*hop, to.as_str(), refusal),
        other => panic!("expected a refused redirect, got: {other}"),
    }
}

/// Fetches through `server` a redirect to `location`, which must be refused: the blocked
/// range, when the refusal is a blocked address, and the error's text.
async fn redirect_blocked(
    fetcher: &SafeFetcher,
    server: &TestServer,
    location: &str,
) -> (Option<BlockedRange>, String) {
    let err = fetcher
        .fetch(&server.url(&format!("/to?{location}")))
        .await
        .unwrap_err();
    let range = match redirect_refusal(&err) {
        (_, _, Refusal::BlockedAddress { blocked, .. }) => Some(blocked.range),
        _ => None,
    };
    (range, err.to_string())
}

#[tokio::test]
async fn a_redirect_from_an_allow_listed_server_to_a_private_address_is_refused() {
    let server = redirector().await;
    let fetcher = crate::fetcher_allowing(&server);

    let err = fetcher
        .fetch(&server.url("/to?http://10.0.0.1/internal?token=SECRET"))
        .await
        .unwrap_err();
    let (hop, to, refusal) = redirect_refusal(&err);
    assert_eq!((hop, to), (1, "http://10.0.0.1/internal?…"));
    assert!(matches!(
        refusal,
        Refusal::BlockedAddress { blocked, .. } if blocked.range == BlockedRange::Private
    ));
    let message = err.to_string();
    assert!(
        message.starts_with(
            "refused: redirect to http://10.0.0.1/internal?…: blocked address 10.0.0.1 (private)"
        ),
        "{message}"
    );
    assert!(!message.contains("SECRET"), "{message}");

    for (location, range) in [
        (
            "http://169.254.169.254/latest/meta-data/",
            BlockedRange::LinkLocal,
        ),
        ("http://[::ffff:192.168.0.1]/", BlockedRange::Private),
        ("http://2130706433/", BlockedRange::Loopback),
    ] {
        let (blocked, err) = redirect_blocked(&fetcher, &server, location).await;
        assert_eq!(blocked, Some(range), "{location}: {err}");
    }
}

#[tokio::test]
async fn a_redirect_to_another_loopback_port_is_refused_before_connecting() {
    let server = redirector().await;
    let png = fixture("image.png");
    let internal = TestServer::start(move |_| Reply::ok("image/png", png.clone())).await;
    let fetcher = crate::fetcher_allowing(&server);

    for location in [
        internal.url("/image.png"),
        format!("http://localhost:{}/image.png", internal.port()),
    ] {
        let (blocked, err) = redirect_blocked(&fetcher, &server, &location).await;
        assert_eq!(blocked, Some(BlockedRange::Loopback), "{err}");
    }
    assert_eq!(internal.connections(), 0);
}

#[tokio::test]
async fn a_redirect_to_a_name_resolving_privately_or_to_another_scheme_is_refused() {
    let server = redirector().await;
    let fetcher = SafeFetcher::new(allowing(&server)).with_resolver(
        StaticResolver::new().with("intranet.example.com", ["192.168.1.10".parse().unwrap()]),
    );
    let err = fetcher
        .fetch(&server.url("/to?https://intranet.example.com/admin"))
        .await
        .unwrap_err();
    let (_, to, refusal) = redirect_refusal(&err);
    assert_eq!(to, "https://intranet.example.com/admin");
    assert!(matches!(
        refusal,
        Refusal::BlockedAddress { host: Some(h), .. } if h == "intranet.example.com"
    ));

    let err = fetcher
        .fetch(&server.url("/to?file:///etc/passwd"))
        .await
        .unwrap_err();
    assert_eq!(redirect_refusal(&err).2, &Refusal::Scheme("file".into()));
    assert!(
        err.to_string().contains("not an allowed scheme: file"),
        "{err}"
    );
}

/// `/chain/N` redirects (relatively) to `/chain/N-1`; `/chain/0` is a PNG.
async fn chain() -> TestServer {
    let png = fixture("image.png");
    TestServer::start(move |request| {
        match request
            .path
            .strip_prefix("/chain/")
            .and_then(|n| n.parse::<u32>().ok())
        {
            Some(0) => Reply::ok("image/png", png.clone()),
            Some(n) => Reply::redirect(
                if n % 2 == 0 { 301 } else { 307 },
                &format!("/chain/{}", n - 1),
            ),
            None => Reply::status(404),
        }
    })
    .await
}

#[tokio::test]
async fn at_most_three_redirects_are_followed() {
    let server = chain().await;
    let fetcher = crate::fetcher_allowing(&server);

    let fetched = fetcher.fetch(&server.url("/chain/3")).await.unwrap();
    assert_eq!(fetched.final_url.path(), "/chain/0");
    assert_eq!(fetched.bytes, fixture("image.png"));
    assert_eq!(
        server.requests(),
        ["/chain/3", "/chain/2", "/chain/1", "/chain/0"]
    );

    let err = fetcher.fetch(&server.url("/chain/4")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { limit: 3 }),
        "{err}"
    );
    assert_eq!(err.to_string(), "refused: more than 3 redirects");
    // The fourth redirect was not followed.
    assert_eq!(server.requests().len(), 4 + 4);
    assert_eq!(server.requests().last().unwrap(), "/chain/1");
}

#[tokio::test]
async fn the_redirect_limit_is_configurable() {
    let server = chain().await;
    let none = SafeFetcher::new(allowing(&server).max_redirects(0));
    assert!(none.fetch(&server.url("/chain/0")).await.is_ok());
    let err = none.fetch(&server.url("/chain/1")).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooManyRedirects { limit: 0 }),
        "{err}"
    );

    let five = SafeFetcher::new(allowing(&server).max_redirects(5));
    assert!(five.fetch(&server.url("/chain/5")).await.is_ok());
    assert!(five.fetch(&server.url("/chain/6")).await.is_err());
}

#[tokio::test]
async fn a_redirect_without_location_and_error_statuses_fail_clearly() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/nowhere" => Reply::status(302),
        _ => Reply::status(404),
    })
    .await;
    let fetcher = SafeFetcher::new(
        FetchPolicy::default()
            .allow_host(&server.authority())
            .unwrap(),
    );
    let err = fetcher.fetch(&server.url("/nowhere")).await.unwrap_err();
    assert!(matches!(err, FetchError::BadRedirect { .. }), "{err}");
    let err = fetcher
        .fetch(&server.url("/missing?sig=abc"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} answered 404 Not Found, expected 200 OK",
            server.url("/missing?…")
        )
    );
}
