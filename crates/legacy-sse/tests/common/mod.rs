//! A tiny MCP handler and a server on loopback for the transport tests.
#![allow(dead_code)] // each test binary uses a part
#![allow(deprecated)] // `flood` uses logging notifications, deprecated in newer revisions

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use legacy_sse::client::{self, Connection};
use legacy_sse::{
    Closable, ClosableConnection, Config, ConnectionCloser, IdentityKey, LegacySse,
    SessionDirectory, split_connect_info,
};
use reqwest::header::{HeaderMap, HeaderValue};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, InitializeResult,
    ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Put into a forwarded request's extensions by the redis tests' `RebuildParts` hook; the
/// unlisted tool `tag` shows it.
#[derive(Clone, Debug)]
pub struct Tag(pub String);

/// What the handlers did, for assertions.
#[derive(Default)]
pub struct Probe {
    pub slow_started: AtomicUsize,
    /// `slow` calls whose future was dropped before finishing (cancelled).
    pub slow_dropped: AtomicUsize,
    pub slow_finished: AtomicUsize,
    /// `flood` calls whose future was dropped before finishing (cancelled).
    pub flood_dropped: AtomicUsize,
}

impl Probe {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// Counts a call as dropped unless it finished.
struct CallGuard {
    probe: Arc<Probe>,
    flood: bool,
    finished: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let counter = match (self.flood, self.finished) {
            (true, false) => &self.probe.flood_dropped,
            (true, true) => return,
            (false, false) => &self.probe.slow_dropped,
            (false, true) => &self.probe.slow_finished,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// Tools: `echo {text}`, `whoami` (what the POST's `Parts` say), `slow {ms?}` (forever
/// without `ms`), `flood {count, size}` (that many log notifications of that size).
#[derive(Clone)]
pub struct Tiny {
    probe: Arc<Probe>,
}

fn tool(name: &'static str, description: &'static str) -> Tool {
    let schema = json!({"type": "object"});
    let Value::Object(schema) = schema else {
        unreachable!()
    };
    Tool::new(name, description, schema)
}

fn text(result: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(result)]).into()
}

impl ServerHandler for Tiny {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![
            tool("echo", "Returns its text"),
            tool(
                "whoami",
                "Describes the HTTP request that delivered the call",
            ),
            tool("slow", "Waits ms milliseconds, or forever"),
            tool("flood", "Sends count notifications of size bytes"),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        match request.name.as_ref() {
            "echo" => Ok(text(args.get("text").and_then(Value::as_str).unwrap_or(""))),
            "whoami" => {
                let Some(parts) = context.extensions.get::<http::request::Parts>() else {
                    return Ok(text("no parts"));
                };
                let user = parts
                    .headers
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                Ok(text(format!(
                    "{user} {} {}",
                    parts.method,
                    parts.uri.path()
                )))
            }
            // Unlisted: what a `RebuildParts` hook put into the extensions, if anything.
            "tag" => {
                let tag = context
                    .extensions
                    .get::<http::request::Parts>()
                    .and_then(|parts| parts.extensions.get::<Tag>())
                    .map_or_else(|| "none".to_owned(), |tag| tag.0.clone());
                Ok(text(tag))
            }
            "slow" => {
                let mut guard = CallGuard {
                    probe: self.probe.clone(),
                    flood: false,
                    finished: false,
                };
                self.probe.slow_started.fetch_add(1, Ordering::SeqCst);
                match args.get("ms").and_then(Value::as_u64) {
                    Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    None => std::future::pending::<()>().await,
                }
                guard.finished = true;
                Ok(text("done"))
            }
            "flood" => {
                let count = args.get("count").and_then(Value::as_u64).unwrap_or(1);
                let size = args.get("size").and_then(Value::as_u64).unwrap_or(10) as usize;
                let payload = "x".repeat(size);
                let mut guard = CallGuard {
                    probe: self.probe.clone(),
                    flood: true,
                    finished: false,
                };
                for _ in 0..count {
                    let param = LoggingMessageNotificationParam::new(
                        LoggingLevel::Info,
                        Value::String(payload.clone()),
                    );
                    let sent = context.peer.notify_logging_message(param).await;
                    if sent.is_err() {
                        return Ok(text("stream closed"));
                    }
                }
                guard.finished = true;
                Ok(text("flooded"))
            }
            other => Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        }
    }
}

/// A server on loopback serving [`Tiny`] at `/sse` and `/messages`; identity from `x-user`.
pub struct TestServer {
    pub base: Url,
    pub sse: LegacySse<Tiny>,
    /// Shuts the transport down (the listener stays up, so POSTs during the drain arrive).
    pub shutdown: CancellationToken,
    pub probe: Arc<Probe>,
    pub http: reqwest::Client,
}

impl TestServer {
    /// Waits (up to 5 s) until the one `slow` call has started.
    pub async fn slow_call_started(&self) {
        eventually("the slow call starts", Duration::from_secs(5), || {
            Probe::get(&self.probe.slow_started) == 1
        })
        .await;
    }

    /// Waits (up to 5 s) until the one `slow` call was dropped unfinished (`what`: why).
    pub async fn slow_call_dropped(&self, what: &str) {
        eventually(what, Duration::from_secs(5), || {
            Probe::get(&self.probe.slow_dropped) == 1
        })
        .await;
    }

    pub async fn start(config: Config) -> TestServer {
        Self::start_serving(config, false).await
    }

    /// Served with `ConnectInfo<ClosableConnection<SocketAddr>>` split by
    /// `split_connect_info`, as an app that also needs the peer address does.
    pub async fn start_split(config: Config) -> TestServer {
        Self::start_serving(config, true).await
    }

    /// With sessions found through `directory` (e.g. a `RedisDirectory`).
    pub async fn start_with_directory(
        config: Config,
        directory: Arc<dyn SessionDirectory>,
    ) -> TestServer {
        Self::start_serving_with(config, false, Some(directory)).await
    }

    async fn start_serving(config: Config, split: bool) -> TestServer {
        Self::start_serving_with(config, split, None).await
    }

    async fn start_serving_with(
        config: Config,
        split: bool,
        directory: Option<Arc<dyn SessionDirectory>>,
    ) -> TestServer {
        let probe = Arc::new(Probe::default());
        let shutdown = CancellationToken::new();
        let factory_probe = probe.clone();
        let mut builder = LegacySse::builder(move || {
            Ok(Tiny {
                probe: factory_probe.clone(),
            })
        });
        if let Some(directory) = directory {
            builder = builder.directory(directory);
        }
        let sse = builder
            .config(config)
            .shutdown(shutdown.clone())
            .identity(|parts| {
                let user = parts.headers.get("x-user")?.to_str().ok()?;
                Some(IdentityKey::new(user))
            })
            .build()
            .expect("valid config");
        let app = sse.router("/sse", "/messages");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Serves until the test's runtime ends.
        tokio::spawn(async move {
            if split {
                let app = app.layer(axum::middleware::from_fn(
                    split_connect_info::<std::net::SocketAddr>,
                ));
                axum::serve(
                    Closable::new(listener),
                    app.into_make_service_with_connect_info::<
                        ClosableConnection<std::net::SocketAddr>,
                    >(),
                )
                .await
                .unwrap();
            } else {
                axum::serve(
                    Closable::new(listener),
                    app.into_make_service_with_connect_info::<ConnectionCloser>(),
                )
                .await
                .unwrap();
            }
        });
        TestServer {
            base: Url::parse(&format!("http://{addr}/")).unwrap(),
            sse,
            shutdown,
            probe,
            http: reqwest::Client::new(),
        }
    }

    pub async fn default() -> TestServer {
        Self::start(Config::default()).await
    }

    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap()
    }

    /// Opens a stream as `user` and reads its endpoint event.
    pub async fn open(&self, user: &str) -> Connection {
        client::open(&self.http, &self.url("/sse"), user_headers(user))
            .await
            .expect("open a stream")
    }

    /// Opens a stream and completes the MCP handshake (2024-11-05) on it.
    pub async fn open_initialized(&self, user: &str) -> Connection {
        let mut connection = self.open(user).await;
        initialize(&mut connection).await;
        connection
    }

    /// POSTs to `/messages?<query>` as `user`.
    pub async fn post(&self, user: Option<&str>, query: &str, body: &str) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url(&format!("/messages{query}")))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        request.send().await.unwrap()
    }
}

pub fn user_headers(user: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-user", HeaderValue::from_str(user).unwrap());
    headers
}

/// POSTs a message and expects 202.
pub async fn send(connection: &Connection, message: Value) {
    let response = connection.post_json(&message).await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 202, "POST {message}: {body}");
}

/// The next `message` event on the stream, parsed.
pub async fn next_message(connection: &mut Connection) -> Value {
    let event = tokio::time::timeout(Duration::from_secs(10), connection.events.next_event())
        .await
        .expect("a message within 10 s")
        .expect("the stream is still open")
        .expect("readable");
    assert_eq!(event.0, "message", "{event:?}");
    serde_json::from_str(&event.1).unwrap()
}

/// Messages until the reply with `id` (notifications before it are skipped).
pub async fn reply_to(connection: &mut Connection, id: i64) -> Value {
    loop {
        let message = next_message(connection).await;
        if message["id"] == json!(id) {
            return message;
        }
    }
}

pub async fn initialize(connection: &mut Connection) -> Value {
    send(
        connection,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "legacy-sse-tests", "version": "0"}
        }}),
    )
    .await;
    let reply = reply_to(connection, 0).await;
    send(
        connection,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    reply
}

pub fn call(id: i64, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": arguments}})
}

/// Waits until `condition` holds, failing after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The response completed (the server ended the stream).
    Clean,
    /// The connection broke mid-response (the server closed it under the stream).
    Broken,
    /// Still open after the timeout.
    Open,
}

/// Reads the stream until it ends or `timeout` passes.
pub async fn read_to_end(connection: &mut Connection, timeout: Duration) -> End {
    tokio::time::timeout(timeout, async {
        loop {
            match connection.events.next_frame().await {
                None => return End::Clean,
                Some(Ok(_)) => continue,
                Some(Err(_)) => return End::Broken,
            }
        }
    })
    .await
    .unwrap_or(End::Open)
}

/// Reads the stream to its end; `true` if it ended cleanly within `timeout`.
pub async fn ends_cleanly(connection: &mut Connection, timeout: Duration) -> bool {
    read_to_end(connection, timeout).await == End::Clean
}
