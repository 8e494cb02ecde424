use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use safe_fetch::{
    BlockedRange, Embedding, FetchError, FetchPolicy, Ports, Refusal, SafeFetcher, StaticResolver,
};

use crate::server::{Reply, TestServer};
use crate::{fixture, refusal};

fn png_server() -> impl Fn(&crate::server::Request) -> Reply + Send + Sync + 'static {
    let png = fixture("image.png");
    move |_| Reply::ok("image/png", png.clone())
}

/// Refused quickly, without touching the network.
async fn refused(fetcher: &SafeFetcher, url: &str) -> FetchError {
    let result = tokio::time::timeout(Duration::from_secs(5), fetcher.fetch(url))
        .await
        .unwrap_or_else(|_| panic!("{url}: not refused up front"));
    result.expect_err(url)
}

fn blocked(
    err: &FetchError,
) -> (
    Option<&str>,
    IpAddr,
    BlockedRange,
    Option<(Embedding, std::net::Ipv4Addr)>,
) {
    match refusal(err) {
        Refusal::BlockedAddress {
            host,
            addr,
            blocked,
        } => (host.as_deref(), *addr, blocked.range, blocked.embedded),
        other => panic!("expected a blocked address, got: {other}"),
    }
}

#[tokio::test]
async fn loopback_in_every_spelling_is_refused_before_connecting() {
    let server = TestServer::start(png_server()).await;
    let port = server.port();
    let fetcher = SafeFetcher::new(FetchPolicy::default());
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();

    for url in [
        format!("http://127.0.0.1:{port}/image.png"),
        format!("http://2130706433:{port}/image.png"),
        format!("http://0x7f000001:{port}/image.png"),
        format!("http://0177.0.0.1:{port}/image.png"),
        format!("http://127.1:{port}/image.png"),
        format!("http://0x7f.0.0.1:{port}/image.png"),
    ] {
        let err = refused(&fetcher, &url).await;
        assert_eq!(
            blocked(&err),
            (None, loopback, BlockedRange::Loopback, None),
            "{url}"
        );
        assert!(
            err.to_string()
                .starts_with("refused: blocked address 127.0.0.1 (loopback)"),
            "{url}: {err}"
        );
    }

    // The system resolver answers localhost with loopback addresses.
    let err = refused(&fetcher, &format!("http://localhost:{port}/image.png")).await;
    let (host, addr, range, _) = blocked(&err);
    assert_eq!((host, range), (Some("localhost"), BlockedRange::Loopback));
    assert!(addr.is_loopback());
    assert!(
        err.to_string().contains("which localhost resolves to"),
        "{err}"
    );

    // Trailing dots and other spellings that still reach loopback.
    for url in [
        format!("http://127.0.0.1.:{port}/"),
        format!("HTTP://LOCALHOST:{port}/"),
        format!("http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/"),
    ] {
        let err = refused(&fetcher, &url).await;
        assert_eq!(blocked(&err).2, BlockedRange::Loopback, "{url}");
    }

    // IPv6 forms that carry 127.0.0.1.
    for (url, form) in [
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            Embedding::Ipv4Mapped,
        ),
        (
            format!("http://[::ffff:7f00:1]:{port}/"),
            Embedding::Ipv4Mapped,
        ),
        (
            format!("http://[64:ff9b::7f00:1]:{port}/"),
            Embedding::Nat64,
        ),
        (
            format!("http://[2002:7f00:1::]:{port}/"),
            Embedding::SixToFour,
        ),
    ] {
        let err = refused(&fetcher, &url).await;
        let (_, _, range, embedded) = blocked(&err);
        assert_eq!(range, BlockedRange::Loopback, "{url}");
        assert_eq!(
            embedded,
            Some((form, "127.0.0.1".parse().unwrap())),
            "{url}"
        );
    }

    // 0.0.0.0 reaches the local host on Linux.
    for url in [
        format!("http://0.0.0.0:{port}/"),
        format!("http://[::]:{port}/"),
        format!("http://0:{port}/"),
    ] {
        let err = refused(&fetcher, &url).await;
        assert_eq!(blocked(&err).2, BlockedRange::Unspecified, "{url}");
    }

    assert_eq!(server.connections(), 0, "a refused fetch must not connect");
}

#[tokio::test]
async fn ipv6_loopback_is_refused_before_connecting() {
    let server = TestServer::start_on("[::1]:0", None, png_server()).await;
    let port = server.as_ref().map_or(8080, |s| s.port());
    let fetcher = SafeFetcher::new(FetchPolicy::default());
    let err = refused(&fetcher, &format!("http://[::1]:{port}/image.png")).await;
    assert_eq!(blocked(&err).2, BlockedRange::Loopback);
    assert!(
        err.to_string().contains("blocked address ::1 (loopback)"),
        "{err}"
    );
    if let Ok(server) = server {
        assert_eq!(server.connections(), 0);
    }
}

#[tokio::test]
async fn private_link_local_and_metadata_addresses_are_refused() {
    let fetcher = SafeFetcher::new(FetchPolicy::default());
    let table = [
        ("http://10.0.0.1/", BlockedRange::Private),
        ("http://167772161/", BlockedRange::Private),
        ("http://012.0.0.1/", BlockedRange::Private),
        ("http://172.16.5.4:8080/", BlockedRange::Private),
        ("http://192.168.1.1/", BlockedRange::Private),
        ("http://[fd00::1]/", BlockedRange::Private),
        ("http://100.64.0.1/", BlockedRange::SharedAddressSpace),
        (
            "http://169.254.169.254/latest/meta-data/",
            BlockedRange::LinkLocal,
        ),
        ("http://[fe80::1]/", BlockedRange::LinkLocal),
        ("http://224.0.0.1/", BlockedRange::Multicast),
        ("http://255.255.255.255/", BlockedRange::Broadcast),
        ("http://192.0.2.10/", BlockedRange::Documentation),
        ("http://198.18.0.1/", BlockedRange::Benchmarking),
        ("http://[::ffff:10.0.0.1]/", BlockedRange::Private),
        ("http://[64:ff9b::a00:1]/", BlockedRange::Private),
        ("http://[::ffff:169.254.169.254]/", BlockedRange::LinkLocal),
        ("http://[64:ff9b::a9fe:a9fe]/", BlockedRange::LinkLocal),
    ];
    for (url, range) in table {
        let err = refused(&fetcher, url).await;
        assert_eq!(blocked(&err).2, range, "{url}");
    }

    let err = refused(
        &fetcher,
        "https://169.254.169.254/latest/api/token?secret=hunter2",
    )
    .await;
    let message = err.to_string();
    assert!(
        message.starts_with("refused: blocked address 169.254.169.254 (link-local)"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "query string leaked: {message}"
    );
    assert!(
        !format!("{err:?}").contains("hunter2"),
        "query string leaked in Debug"
    );

    let err = refused(&fetcher, "http://[::ffff:a9fe:a9fe]/").await;
    assert!(
        err.to_string()
            .contains("(IPv4-mapped form of 169.254.169.254, link-local)"),
        "{err}"
    );
    let err = refused(&fetcher, "http://[64:ff9b:1::a00:1]/").await;
    assert!(matches!(blocked(&err).2, BlockedRange::Reserved(_)));
}

#[tokio::test]
async fn schemes_other_than_http_and_https_are_refused() {
    let fetcher = SafeFetcher::new(FetchPolicy::default());
    for (url, scheme) in [
        ("file:///etc/passwd", "file"),
        ("ftp://ftp.example.com/pub/x.png", "ftp"),
        ("gopher://example.com/", "gopher"),
        ("data:image/png;base64,iVBORw0KGgo=", "data"),
        ("javascript:alert(1)", "javascript"),
    ] {
        let err = refused(&fetcher, url).await;
        assert_eq!(refusal(&err), &Refusal::Scheme(scheme.into()), "{url}");
        assert!(
            err.to_string()
                .starts_with(&format!("refused: not an allowed scheme: {scheme}")),
            "{err}"
        );
    }

    let https_only = SafeFetcher::new(FetchPolicy::default().https_only(true));
    let err = refused(&https_only, "http://example.com/x.png").await;
    assert_eq!(refusal(&err), &Refusal::Scheme("http".into()));

    let err = refused(&fetcher, "not a url").await;
    assert!(matches!(err, FetchError::InvalidUrl(_)), "{err}");
}

#[tokio::test]
async fn credentials_in_the_url_are_refused_even_for_allow_listed_hosts() {
    let server = TestServer::start(png_server()).await;
    let fetcher = crate::fetcher_allowing(&server);
    let url = format!("http://admin:s3cret@{}/image.png", server.authority());
    let err = refused(&fetcher, &url).await;
    assert_eq!(refusal(&err), &Refusal::Credentials);
    assert!(!err.to_string().contains("s3cret"), "{err}");
    assert!(!format!("{err:?}").contains("s3cret"));
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn ports_can_be_restricted() {
    let fetcher =
        SafeFetcher::new(FetchPolicy::default().ports(Ports::Only(BTreeSet::from([443]))));
    let err = refused(&fetcher, "http://example.com/x.png").await;
    assert_eq!(refusal(&err), &Refusal::Port(80));
    let err = refused(&fetcher, "https://example.com:8443/x.png").await;
    assert_eq!(refusal(&err), &Refusal::Port(8443));
}

#[tokio::test]
async fn a_public_looking_name_that_resolves_to_a_private_address_is_refused() {
    let resolver = StaticResolver::new()
        .with("images.example.com", ["10.1.2.3".parse().unwrap()])
        .with("metadata.example.net", ["169.254.169.254".parse().unwrap()])
        .with("v6.example.org", ["fd12::7".parse().unwrap()]);
    let fetcher = SafeFetcher::new(FetchPolicy::default()).with_resolver(resolver);

    let err = refused(&fetcher, "https://images.example.com/cat.png").await;
    assert_eq!(
        err.to_string(),
        "refused: blocked address 10.1.2.3 (private), which images.example.com resolves to \
         (fetching https://images.example.com/cat.png)"
    );
    let err = refused(&fetcher, "http://metadata.example.net/latest").await;
    assert_eq!(blocked(&err).2, BlockedRange::LinkLocal);
    let err = refused(&fetcher, "http://v6.example.org/").await;
    assert_eq!(blocked(&err).2, BlockedRange::Private);
}

#[tokio::test]
async fn answers_mixing_public_and_private_addresses_are_refused() {
    let resolver = StaticResolver::new()
        .with(
            "mixed.example.com",
            [
                "93.184.215.14".parse().unwrap(),
                "10.0.0.5".parse().unwrap(),
            ],
        )
        .with(
            "mixed6.example.com",
            [
                "2606:2800:21f:cb07::1".parse().unwrap(),
                "::1".parse().unwrap(),
            ],
        );
    let fetcher = SafeFetcher::new(FetchPolicy::default()).with_resolver(resolver);

    let err = refused(&fetcher, "https://mixed.example.com/a.png").await;
    let (host, addr, range, _) = blocked(&err);
    assert_eq!(
        (host, addr, range),
        (
            Some("mixed.example.com"),
            "10.0.0.5".parse().unwrap(),
            BlockedRange::Private
        )
    );
    let err = refused(&fetcher, "https://mixed6.example.com/a.png").await;
    assert_eq!(blocked(&err).2, BlockedRange::Loopback);
}

#[tokio::test]
async fn names_that_do_not_resolve_fail_clearly() {
    let fetcher = SafeFetcher::new(FetchPolicy::default()).with_resolver(StaticResolver::new());
    let err = refused(&fetcher, "https://nowhere.example.com/a.png").await;
    assert!(
        matches!(&err, FetchError::Dns { host, .. } if host == "nowhere.example.com"),
        "{err}"
    );

    let fetcher = SafeFetcher::new(FetchPolicy::default())
        .with_resolver(StaticResolver::new().with("empty.example.com", []));
    let err = refused(&fetcher, "https://empty.example.com/a.png").await;
    assert!(matches!(err, FetchError::NoAddresses { .. }), "{err}");
}

#[tokio::test]
async fn the_allow_list_is_the_only_way_around_the_address_check() {
    let server = TestServer::start(png_server()).await;

    let fetched = crate::fetcher_allowing(&server)
        .fetch(&server.url("/image.png"))
        .await
        .unwrap();
    assert_eq!(fetched.bytes, fixture("image.png"));

    // Allow-listed for another port only: still refused.
    let other_port = SafeFetcher::new(
        FetchPolicy::default()
            .allow_host(&format!("127.0.0.1:{}", server.port().wrapping_add(1)))
            .unwrap(),
    );
    let err = refused(&other_port, &server.url("/image.png")).await;
    assert_eq!(blocked(&err).2, BlockedRange::Loopback);

    // Allow-listing one name does not allow another name for the same address.
    let by_name = SafeFetcher::new(FetchPolicy::default().allow_host("127.0.0.1").unwrap());
    let err = refused(
        &by_name,
        &format!("http://localhost:{}/image.png", server.port()),
    )
    .await;
    assert_eq!(blocked(&err).2, BlockedRange::Loopback);

    assert_eq!(server.connections(), 1);
}
