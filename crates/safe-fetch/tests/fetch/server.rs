//! A small HTTP/1.1 server on loopback whose every byte the tests control: it can redirect,
//! stream more than the cap, lie about Content-Length, or stall.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub struct Request {
    pub path: String,
    pub host: Option<String>,
}

pub enum Reply {
    /// A complete response with a Content-Length; the connection stays open for reuse.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `200 OK` with no Content-Length: `total` bytes then close, the last `paced_tail` of
    /// them slowly. How it went is sent on `outcome`.
    Stream {
        total: u64,
        paced_tail: u64,
        outcome: mpsc::UnboundedSender<StreamOutcome>,
    },
    /// Send `head` (if any) and `body`, then hold the connection open without a word more.
    Stall { head: Option<String>, body: Vec<u8> },
}

#[derive(Debug)]
pub struct StreamOutcome {
    pub written: u64,
    /// The client closed or reset the connection before taking the whole body.
    pub closed_early: bool,
}

impl Reply {
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn status(status: u16) -> Self {
        Self::Full {
            status,
            headers: vec![],
            body: vec![],
        }
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Self::Full {
            status,
            headers: vec![("Location".into(), location.into())],
            body: vec![],
        }
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

pub struct TestServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Plain HTTP on 127.0.0.1.
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1:0", None, handler)
            .await
            .expect("bind 127.0.0.1")
    }

    /// On `bind`, with TLS when `tls` is given.
    pub async fn start_on(
        bind: &str,
        tls: Option<TlsAcceptor>,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Handler = Arc::new(handler);
        let task = tokio::spawn({
            let requests = requests.clone();
            let connections = connections.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let handler = handler.clone();
                    let requests = requests.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    serve_connection(stream, handler, requests).await;
                                }
                            }
                            None => serve_connection(stream, handler, requests).await,
                        }
                    });
                }
            }
        });
        Ok(Self {
            addr,
            requests,
            connections,
            task,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `127.0.0.1:PORT`, for the allow-list.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Request paths, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve_connection<S>(mut stream: S, handler: Handler, requests: Arc<Mutex<Vec<String>>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buffered = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buffered).await else {
            return;
        };
        let request = parse_head(&head);
        requests.lock().unwrap().push(request.path.clone());
        match handler(&request) {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&body);
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Stream {
                total,
                paced_tail,
                outcome,
            } => {
                let result = stream_body(&mut stream, total, paced_tail).await;
                let _ = outcome.send(result);
                return;
            }
            Reply::Stall { head, body } => {
                if let Some(head) = head {
                    let _ = stream.write_all(head.as_bytes()).await;
                }
                let _ = stream.write_all(&body).await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_secs(120)).await;
                return;
            }
        }
    }
}

async fn stream_body<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    total: u64,
    paced_tail: u64,
) -> StreamOutcome {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
    let chunk = vec![0x5a_u8; 64 * 1024];
    let early = |written| StreamOutcome {
        written,
        closed_early: true,
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        return early(0);
    }
    let mut written = 0u64;
    let fast = total.saturating_sub(paced_tail);
    while written < total {
        // The tail goes out in small pieces with pauses, so a client that hangs up part-way
        // makes a later write fail instead of everything vanishing into socket buffers.
        let piece = if written < fast {
            chunk.len().min((fast - written) as usize)
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
            (16 * 1024).min((total - written) as usize)
        };
        if stream.write_all(&chunk[..piece]).await.is_err() || stream.flush().await.is_err() {
            return early(written);
        }
        written += piece as u64;
    }
    // Everything was sent: a client that read it all closes cleanly (EOF); one that dropped
    // the connection with data unread makes its kernel answer with a reset.
    if stream.shutdown().await.is_err() {
        return early(written);
    }
    let mut scratch = [0u8; 1024];
    let closed_early = !matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut scratch)).await,
        Ok(Ok(0))
    );
    StreamOutcome {
        written,
        closed_early,
    }
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buffered: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buffered.drain(..end + 4).collect();
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffered.extend_from_slice(&chunk[..n]),
        }
    }
}

fn parse_head(head: &str) -> Request {
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let host = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("host")
            .then(|| value.trim().to_owned())
    });
    Request { path, host }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        300..=399 => "Redirect",
        404 => "Not Found",
        _ => "Whatever",
    }
}
