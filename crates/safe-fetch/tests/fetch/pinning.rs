use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use safe_fetch::{FetchError, FetchPolicy, SafeFetcher, SniffedType, StaticResolver};
use tokio_rustls::TlsAcceptor;

use crate::fixture;
use crate::server::{Reply, TestServer};

#[tokio::test]
async fn the_connection_goes_to_the_address_that_was_checked() {
    let seen_hosts = Arc::new(Mutex::new(Vec::new()));
    let server = TestServer::start({
        let seen_hosts = seen_hosts.clone();
        let png = fixture("image.png");
        move |request| {
            seen_hosts.lock().unwrap().push(request.host.clone());
            Reply::ok("image/png", png.clone())
        }
    })
    .await;
    let port = server.port();
    // `files.test` exists only in the injected resolver: the system's could never find it, so
    // a successful fetch shows the HTTP client connected where this crate's check said.
    let fetcher = SafeFetcher::new(
        FetchPolicy::default()
            .allow_host(&format!("files.test:{port}"))
            .unwrap(),
    )
    .with_resolver(StaticResolver::new().with("files.test", ["127.0.0.1".parse().unwrap()]));

    let url = format!("http://files.test:{port}/image.png");
    let checked = fetcher.check(&url).await.unwrap();
    assert_eq!(
        checked.addrs,
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(checked.allow_listed);
    assert_eq!(server.connections(), 0, "check alone must not connect");

    let fetched = fetcher.fetch(&url).await.unwrap();
    assert_eq!(fetched.sniffed, SniffedType::Png);
    assert_eq!(fetched.final_url.as_str(), url);
    assert_eq!(
        seen_hosts.lock().unwrap().as_slice(),
        [Some(format!("files.test:{port}"))]
    );
}

#[tokio::test]
async fn fetches_checked_to_the_same_addresses_share_a_connection() {
    let server = TestServer::start({
        let png = fixture("image.png");
        move |_| Reply::ok("image/png", png.clone())
    })
    .await;
    let fetcher = crate::fetcher_allowing(&server);
    for _ in 0..3 {
        fetcher.fetch(&server.url("/image.png")).await.unwrap();
    }
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.connections(), 1, "idle connection not reused");
}

async fn tls_server() -> TestServer {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&fixture("files.test.pem"))
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&fixture("files.test.key")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let png = fixture("image.png");
    TestServer::start_on("127.0.0.1:0", Some(acceptor), move |_| {
        Reply::ok("image/png", png.clone())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn tls_verifies_the_original_host_name_not_the_pinned_address() {
    let server = tls_server().await;
    let port = server.port();
    let resolver = StaticResolver::new()
        .with("files.test", ["127.0.0.1".parse().unwrap()])
        .with("other.test", ["127.0.0.1".parse().unwrap()]);
    let policy = FetchPolicy::default()
        .allow_host(&format!("files.test:{port}"))
        .unwrap()
        .allow_host(&format!("other.test:{port}"))
        .unwrap();
    let trusting = SafeFetcher::new(
        policy
            .clone()
            .add_root_certificate_pem(&fixture("test-ca.pem"))
            .unwrap(),
    )
    .with_resolver(resolver.clone());

    // The certificate names files.test: fetched over TLS to the pinned loopback address.
    let fetched = trusting
        .fetch(&format!("https://files.test:{port}/image.png"))
        .await
        .unwrap();
    assert_eq!(fetched.sniffed, SniffedType::Png);

    // Same address, same certificate, but the URL names other.test: verification fails.
    let err = trusting
        .fetch(&format!("https://other.test:{port}/image.png"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Transport { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // And without the test CA the certificate is not trusted at all.
    let untrusting = SafeFetcher::new(policy).with_resolver(resolver);
    let err = untrusting
        .fetch(&format!("https://files.test:{port}/image.png"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Transport { .. }), "{err}");
}
