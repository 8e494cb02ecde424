//! The two endpoints: `GET` opens a stream (one session), `POST` delivers messages to it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderName, HeaderValue, StatusCode, Version, header};
use http_body_util::BodyExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::{RoleServer, Service, serve_server_with_ct};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cancel::{Cancellable, InFlight};
use crate::config::{Config, ConfigError};
use crate::connection::ConnectionCloser;
use crate::directory::{Delivery, Inbox, LocalDirectory, SessionDirectory};
use crate::identity::{Identify, IdentityKey, from_extensions};
use crate::limits::StreamLimits;
use crate::rejection::Rejection;
use crate::session::SessionId;
use crate::transport::SessionTransport;

/// Messages a session accepts ahead of its service; POSTs wait beyond that.
const INBOX_CAPACITY: usize = 32;
/// After the service ended, how long its last messages may take to reach a client that
/// is slow to read before the stream is closed anyway.
const FINAL_FLUSH: Duration = Duration::from_secs(5);
/// After a stream was told to end, how long it may take to notice before its connection is
/// closed under it (it is stuck behind a client that does not read).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

type Factory<S> = dyn Fn() -> Result<S, std::io::Error> + Send + Sync;

/// The old transport for handlers of type `S`, built by a factory once per stream. Cheap to
/// clone; every clone serves the same sessions.
pub struct LegacySse<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for LegacySse<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    factory: Box<Factory<S>>,
    config: Config,
    shutdown: CancellationToken,
    directory: Arc<dyn SessionDirectory>,
    identify: Identify,
    limits: StreamLimits,
    stuck_connections_closed: AtomicU64,
}

/// Counters of a [`LegacySse`], for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Streams open in this process.
    pub open_streams: usize,
    /// Connections closed under a stream that could not end by itself (its client had
    /// stopped reading).
    pub stuck_connections_closed: u64,
}

/// Builds a [`LegacySse`].
pub struct Builder<S> {
    factory: Box<Factory<S>>,
    config: Config,
    shutdown: CancellationToken,
    directory: Arc<dyn SessionDirectory>,
    identify: Identify,
}

impl<S> Builder<S> {
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Cancelling this token shuts the transport down: new streams are refused, requests
    /// in flight get [`Config::shutdown_drain`] to finish, then every stream ends cleanly
    /// (so clients reconnect, elsewhere if this replica is going away).
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = token;
        self
    }

    /// Where sessions are found (default: [`LocalDirectory`]).
    pub fn directory(mut self, directory: Arc<dyn SessionDirectory>) -> Self {
        self.directory = directory;
        self
    }

    /// How a request's identity is found (default: an [`IdentityKey`] in the request
    /// extensions). A request without one is refused with 500: authentication must be in
    /// front of this transport.
    pub fn identity(
        mut self,
        identify: impl Fn(&http::request::Parts) -> Option<IdentityKey> + Send + Sync + 'static,
    ) -> Self {
        self.identify = Arc::new(identify);
        self
    }

    pub fn build(self) -> Result<LegacySse<S>, ConfigError> {
        self.config.validate()?;
        let limits = StreamLimits::new(
            self.config.max_streams_per_identity,
            self.config.max_sessions,
        );
        Ok(LegacySse {
            inner: Arc::new(Inner {
                factory: self.factory,
                config: self.config,
                shutdown: self.shutdown,
                directory: self.directory,
                identify: self.identify,
                limits,
                stuck_connections_closed: AtomicU64::new(0),
            }),
        })
    }
}

impl<S> LegacySse<S>
where
    S: Service<RoleServer>,
{
    /// Starts building the transport for handlers made by `factory` (the same kind of
    /// factory rmcp's `StreamableHttpService` takes).
    pub fn builder(
        factory: impl Fn() -> Result<S, std::io::Error> + Send + Sync + 'static,
    ) -> Builder<S> {
        Builder {
            factory: Box::new(factory),
            config: Config::default(),
            shutdown: CancellationToken::new(),
            directory: Arc::new(LocalDirectory::new()),
            identify: Arc::new(from_extensions),
        }
    }

    /// An axum router with the stream at `stream_route` (GET) and the messages at
    /// `messages_route` (POST). The `endpoint` event names [`Config::messages_path`], which
    /// must reach `messages_route` (they differ when a proxy strips a path prefix).
    pub fn router(&self, stream_route: &str, messages_route: &str) -> Router {
        let stream = self.clone();
        let messages = self.clone();
        Router::new()
            .route(
                stream_route,
                axum::routing::get(move |request: Request| async move {
                    stream.open_stream(request).await
                }),
            )
            .route(
                messages_route,
                axum::routing::post(move |request: Request| async move {
                    messages.post_message(request).await
                }),
            )
    }

    /// Streams open in this process.
    pub fn open_streams(&self) -> usize {
        self.inner.limits.open()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            open_streams: self.inner.limits.open(),
            stuck_connections_closed: self.inner.stuck_connections_closed.load(Ordering::Relaxed),
        }
    }

    /// `GET`: opens a stream, and with it a session running a new handler.
    pub async fn open_stream(&self, request: Request) -> Response {
        let inner = &self.inner;
        let (parts, _body) = request.into_parts();
        let Some(owner) = (inner.identify)(&parts) else {
            tracing::error!("SSE stream request without an identity: is authentication in front?");
            return Rejection::NoIdentity.into_response();
        };
        if inner.shutdown.is_cancelled() {
            return Rejection::ShuttingDown.into_response();
        }

        let session = SessionId::random();
        let stop = CancellationToken::new();
        match inner.limits.admit(&owner, &session, &stop) {
            Ok(evicted) => {
                for oldest in evicted {
                    tracing::info!(
                        ?owner,
                        "stream limit per identity reached; closing the oldest"
                    );
                    oldest.cancel();
                }
            }
            Err(_) => {
                tracing::warn!(
                    open = inner.limits.open(),
                    "SSE stream limit reached; refusing a new stream"
                );
                return Rejection::TooManyStreams.into_response();
            }
        }
        // On HTTP/1 the connection carries only this stream, so it can be closed if the
        // stream gets stuck behind a client that does not read.
        let connection = parts
            .extensions
            .get::<ConnectionCloser>()
            .cloned()
            .or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<ConnectionCloser>>()
                    .map(|info| info.0.clone())
            })
            .filter(|_| parts.version <= Version::HTTP_11);
        let shared = Arc::new(SessionShared {
            id: session.clone(),
            owner: owner.clone(),
            stop: stop.clone(),
            stream_gone: CancellationToken::new(),
            connection,
            inner: self.inner.clone(),
        });
        // From here on, dropping the guard (with the response body) ends the session.
        let guard = StreamGuard(shared.clone());

        let handler = match (inner.factory)() {
            Ok(handler) => handler,
            Err(error) => {
                tracing::error!(%error, "the handler factory failed; refusing the stream");
                return Rejection::HandlerUnavailable.into_response();
            }
        };
        let draining = CancellationToken::new();
        let input_closed = CancellationToken::new();
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOX_CAPACITY);
        let (outbound_tx, outbound_rx) = mpsc::channel(inner.config.backlog);
        let inbox = Inbox::new(inbound_tx, draining.clone(), stop.clone());
        if let Err(error) = inner
            .directory
            .register(session.clone(), owner.clone(), inbox)
            .await
        {
            tracing::warn!(%error, "cannot register an SSE session");
            return Rejection::from(error).into_response();
        }
        let transport = SessionTransport {
            session: session.clone(),
            inbound: inbound_rx,
            input_closed: input_closed.clone(),
            outbound: outbound_tx,
            slow_reader_timeout: inner.config.slow_reader_timeout,
            stop: stop.clone(),
        };
        let in_flight = InFlight::new();
        tokio::spawn(run_session(
            Cancellable::new(handler, in_flight.clone()),
            transport,
            shared,
            SessionControl {
                draining,
                input_closed,
                in_flight,
                shutdown: inner.shutdown.clone(),
                drain: inner.config.shutdown_drain,
            },
        ));
        tracing::debug!(%session, ?owner, "SSE stream opened");

        let endpoint = format!("{}?sessionId={session}", inner.config.messages_path);
        let events =
            futures::stream::once(async move { Event::default().event("endpoint").data(endpoint) })
                .chain(
                    tokio_stream_from(outbound_rx)
                        .filter_map(|message| async move { message_event(&message) }),
                )
                .take_until(stop.cancelled_owned())
                .map(move |event| {
                    // The guard lives as long as the stream does.
                    let _alive = &guard;
                    Ok::<_, Infallible>(event)
                });
        let mut response = Sse::new(events)
            .keep_alive(
                KeepAlive::new()
                    .interval(inner.config.keep_alive)
                    .text("keep-alive"),
            )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// `POST ?sessionId=…`: delivers one message or a batch to the session; 202 Accepted,
    /// the replies go out on the stream.
    pub async fn post_message(&self, request: Request) -> Response {
        match self.try_post(request).await {
            Ok(()) => (StatusCode::ACCEPTED, "Accepted").into_response(),
            Err(rejection) => rejection.into_response(),
        }
    }

    async fn try_post(&self, request: Request) -> Result<(), Rejection> {
        let inner = &self.inner;
        let (parts, body) = request.into_parts();
        let session = session_id_param(parts.uri.query()).ok_or(Rejection::MissingSessionId)?;
        let Some(sender) = (inner.identify)(&parts) else {
            tracing::error!("SSE message without an identity: is authentication in front?");
            return Err(Rejection::NoIdentity);
        };

        let limit = inner.config.max_body_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(Rejection::BodyTooLarge(limit));
        }
        let bytes = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                return Err(Rejection::BodyTooLarge(limit));
            }
            Err(_) => return Err(Rejection::BodyUnreadable),
        };
        let messages = parse_messages(&bytes)?;

        // An id that cannot be ours is answered like an unknown one.
        let session = SessionId::parse(&session).ok_or(Rejection::SessionNotFound)?;
        inner
            .directory
            .deliver(&session, &sender, Delivery { parts, messages })
            .await
            .map_err(Rejection::from)
    }
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Box<ServerJsonRpcMessage>>,
) -> impl futures::Stream<Item = Box<ServerJsonRpcMessage>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn message_event(message: &ServerJsonRpcMessage) -> Option<Event> {
    match serde_json::to_string(message) {
        Ok(json) => Some(Event::default().event("message").data(json)),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a server message; dropping it");
            None
        }
    }
}

/// The `sessionId` query parameter, if present and not empty.
fn session_id_param(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "sessionId")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// One JSON-RPC message or a non-empty batch.
fn parse_messages(bytes: &[u8]) -> Result<Vec<ClientJsonRpcMessage>, Rejection> {
    let value: Value = serde_json::from_slice(bytes).map_err(|_| Rejection::ParseError)?;
    let items = match value {
        Value::Array(items) if items.is_empty() => {
            return Err(Rejection::InvalidMessage {
                id: None,
                detail: "empty batch".to_owned(),
            });
        }
        Value::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .map(|item| {
            // Log forging: an id with control characters (a newline, an ANSI escape) is
            // refused before anything records or echoes it.
            if item
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.chars().any(char::is_control))
            {
                return Err(Rejection::InvalidMessage {
                    id: None,
                    detail: "a string `id` must not contain control characters".to_owned(),
                });
            }
            let id = item.get("id").cloned();
            serde_json::from_value::<ClientJsonRpcMessage>(item).map_err(|error| {
                Rejection::InvalidMessage {
                    id,
                    detail: error.to_string(),
                }
            })
        })
        .collect()
}

/// What the stream and the session task share about one session.
struct SessionShared<S> {
    id: SessionId,
    owner: IdentityKey,
    /// Ends the stream at once (and, through its child, the service).
    stop: CancellationToken,
    /// Cancelled when the response body is dropped.
    stream_gone: CancellationToken,
    /// Closes the HTTP/1 connection of the stream.
    connection: Option<ConnectionCloser>,
    inner: Arc<Inner<S>>,
}

impl<S> SessionShared<S> {
    /// The session no longer counts against the limits nor receives POSTs. Idempotent.
    fn release(&self) {
        self.inner.limits.release(&self.owner, &self.id);
        let directory = self.inner.directory.clone();
        let session = self.id.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { directory.unregister(&session).await });
        }
    }
}

/// Ends a session when its stream is dropped (client gone, stream ended or stopped).
struct StreamGuard<S>(Arc<SessionShared<S>>);

impl<S> Drop for StreamGuard<S> {
    fn drop(&mut self) {
        self.0.stop.cancel();
        self.0.stream_gone.cancel();
        self.0.release();
        tracing::debug!(session = %self.0.id, "SSE stream closed");
    }
}

/// What the session task watches besides the stream.
struct SessionControl {
    /// Refuse new messages.
    draining: CancellationToken,
    /// End the service's input (once nothing is in flight).
    input_closed: CancellationToken,
    in_flight: InFlight,
    shutdown: CancellationToken,
    drain: Duration,
}

/// Runs one session's service until its stream ends, or drains it on shutdown.
async fn run_session<S>(
    handler: Cancellable<S>,
    transport: SessionTransport,
    shared: Arc<SessionShared<S>>,
    control: SessionControl,
) where
    S: Service<RoleServer>,
{
    let session = &shared.id;
    let stop = &shared.stop;
    let SessionControl {
        draining,
        input_closed,
        in_flight,
        shutdown,
        drain,
    } = control;
    // The service and its requests end with `stop` too (a child token), but not the other
    // way round: after the service ends the stream stays open until its last messages are out.
    let service_ct = stop.child_token();
    let serve = async {
        match serve_server_with_ct(handler, transport, service_ct.clone()).await {
            Ok(running) => {
                let reason = running.waiting().await;
                tracing::debug!(%session, ?reason, "SSE session service ended");
            }
            Err(error) => {
                tracing::debug!(%session, %error, "SSE session ended before it was initialized");
            }
        }
    };
    let on_shutdown = async {
        shutdown.cancelled().await;
        draining.cancel();
        if tokio::time::timeout(drain, in_flight.idle()).await.is_ok() {
            // Replies of finished requests are on their way; ending the input lets rmcp
            // send them, then the service ends and the stream closes after them.
            input_closed.cancel();
        } else {
            tracing::info!(%session, "requests still running after the drain time; closing the stream");
            stop.cancel();
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = serve => {}
        () = on_shutdown => {}
    }
    // Whatever the handler still runs is cancelled; the stream gets a moment to flush.
    service_ct.cancel();
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(FINAL_FLUSH) => stop.cancel(),
    }
    // Ended is ended, even if the stream has not noticed yet.
    shared.release();
    if let Some(connection) = &shared.connection {
        tokio::select! {
            () = shared.stream_gone.cancelled() => {}
            () = tokio::time::sleep(CLOSE_GRACE) => {
                tracing::info!(%session, "SSE stream stuck behind a client that does not read; closing its connection");
                connection.close();
                shared.inner.stuck_connections_closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_is_read_from_the_query() {
        assert_eq!(
            session_id_param(Some("sessionId=abc")).as_deref(),
            Some("abc")
        );
        assert_eq!(
            session_id_param(Some("x=1&sessionId=a%2Db")).as_deref(),
            Some("a-b")
        );
        assert_eq!(session_id_param(Some("sessionId=")), None);
        assert_eq!(session_id_param(Some("session=abc")), None);
        assert_eq!(session_id_param(None), None);
    }

    #[test]
    fn bodies_parse_to_messages_or_the_right_rejection() {
        let ping = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert_eq!(parse_messages(ping).map(|m| m.len()).ok(), Some(1));
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
        assert_eq!(parse_messages(batch).map(|m| m.len()).ok(), Some(2));
        assert!(matches!(
            parse_messages(b"{not json"),
            Err(Rejection::ParseError)
        ));
        assert!(matches!(
            parse_messages(b"[]"),
            Err(Rejection::InvalidMessage { .. })
        ));
        match parse_messages(br#"{"jsonrpc":"2.0","id":7}"#) {
            Err(Rejection::InvalidMessage { id, .. }) => assert_eq!(id, Some(Value::from(7))),
            other => panic!("{other:?}"),
        }
    }
}
