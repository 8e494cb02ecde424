//! A plain round-robin HTTP reverse proxy on loopback, behaving like an nginx `upstream` with
//! default settings and `proxy_buffering off`:
//!
//! - every **request** goes to the next backend in turn (not every client connection: a
//!   client's keep-alive connection spreads its requests), with no stickiness of any kind;
//! - each request gets a fresh backend connection (nginx keeps no upstream connections alive
//!   unless told to), and request and response bodies stream through unbuffered, so an SSE
//!   stream flows event by event and stays on the backend that answered its GET;
//! - a backend that refuses the connection is skipped for the next one
//!   (`proxy_next_upstream error`); a failure after the request was sent is a 502, and a
//!   response body cut short cuts the client's response short too.
//!
//! Backends are a fixed list of ports: a replica restarted on its port is the same backend.
//! The proxy records where each request went ([`Proxy::routed`]) so tests can assert that work
//! really spread over the replicas.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Headers that belong to one hop and are not forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// How long the proxy waits for a backend to accept a connection (nginx's default is 60 s; a
/// loopback port either accepts or refuses at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One request as the proxy routed it.
#[derive(Clone, Debug)]
pub struct Routed {
    /// Index of the backend that got the request (after skipping refusing ones).
    pub backend: usize,
    pub method: String,
    pub path: String,
    /// The backend's status, or 502 when it failed after the request was sent.
    pub status: u16,
}

struct Shared {
    backends: Vec<SocketAddr>,
    /// Whether each backend is in the rotation (a Kubernetes Service drops a terminating
    /// pod's endpoint; see [`Proxy::set_in_rotation`]).
    in_rotation: Vec<AtomicBool>,
    next: AtomicUsize,
    routed: Mutex<Vec<Routed>>,
}

/// A running proxy; stopped (its connections cut) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on a free loopback port in front of `backends` (loopback ports).
    ///
    /// It runs on its own thread and runtime, so a test's single-threaded runtime does not
    /// stall it, and it goes on serving whatever the test does.
    pub fn start(backend_ports: &[u16]) -> Proxy {
        Self::start_on(crate::free_port(), backend_ports)
    }

    /// Starts on a given port.
    pub fn start_on(port: u16, backend_ports: &[u16]) -> Proxy {
        assert!(!backend_ports.is_empty(), "a proxy needs a backend");
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the proxy's port");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            backends: backend_ports
                .iter()
                .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect(),
            in_rotation: backend_ports
                .iter()
                .map(|_| AtomicBool::new(true))
                .collect(),
            next: AtomicUsize::new(0),
            routed: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        _ = accept_loop(listener, thread_shared) => {}
                        _ = stopped => {}
                    }
                });
                // Cut every connection still open, as a stopped proxy would.
                runtime.shutdown_background();
            })
            .expect("spawn the proxy thread");
        Proxy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `<origin><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request routed so far, in the order they were answered (or failed).
    pub fn routed(&self) -> Vec<Routed> {
        self.shared
            .routed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Requests per backend so far.
    pub fn counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.shared.backends.len()];
        for r in self.routed() {
            counts[r.backend] += 1;
        }
        counts
    }

    /// Takes backend `i` out of the rotation or puts it back, as a Kubernetes Service does
    /// with the endpoint of a pod that is terminating (or not ready). Requests already
    /// routed to it go on.
    pub fn set_in_rotation(&self, i: usize, in_rotation: bool) {
        self.shared.in_rotation[i].store(in_rotation, Ordering::Relaxed);
    }

    /// Forgets the routing log (e.g. after setup, before the part a test asserts on).
    pub fn reset(&self) {
        self.shared
            .routed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(forward(&shared, request).await) }
            });
            // Keep-alive on the client side, as nginx does.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Connects to the next backend in turn, skipping ones that refuse.
async fn connect(shared: &Shared) -> Option<(usize, TcpStream)> {
    let n = shared.backends.len();
    let first = shared.next.fetch_add(1, Ordering::Relaxed);
    for attempt in 0..n {
        let index = (first + attempt) % n;
        if !shared.in_rotation[index].load(Ordering::Relaxed) {
            continue;
        }
        let addr = shared.backends[index];
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            let _ = stream.set_nodelay(true);
            return Some((index, stream));
        }
    }
    None
}

fn bad_gateway(text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let record = |backend: usize, status: u16| {
        shared
            .routed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Routed {
                backend,
                method: method.clone(),
                path: path.clone(),
                status,
            });
    };
    let Some((backend, stream)) = connect(shared).await else {
        return bad_gateway("no backend accepted the connection\n");
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(_) => {
                record(backend, 502);
                return bad_gateway("the backend failed\n");
            }
        };
    // The connection drives itself until the response body is done (or dropped).
    tokio::spawn(connection);

    let (mut parts, body) = request.into_parts();
    parts.uri = path
        .parse()
        .unwrap_or_else(|_| hyper::Uri::from_static("/"));
    parts.version = hyper::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    // One request per backend connection, as nginx without upstream keep-alive.
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    let upstream = Request::from_parts(parts, body);
    match sender.send_request(upstream).await {
        Ok(response) => {
            record(backend, response.status().as_u16());
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(_) => {
            record(backend, 502);
            bad_gateway("the backend failed after the request was sent\n")
        }
    }
}

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}
