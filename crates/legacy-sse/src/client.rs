//! A small client for the old transport: rmcp has none, and tests, benchmarks and tools need
//! one. [`connect`] opens a stream and gives an rmcp client transport
//! (`().serve(transport)`); [`open`] gives the raw stream and POSTs, for tests that look
//! at the wire.

use std::collections::VecDeque;
use std::pin::Pin;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::RoleClient;
use rmcp::transport::Transport;
use url::Url;

/// What can go wrong on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the stream ended before its endpoint event")]
    NoEndpoint,
    #[error("the endpoint event names an unusable URL: {0}")]
    BadEndpoint(String),
    #[error("a message event is not a JSON-RPC message: {0}")]
    Json(#[from] serde_json::Error),
}

/// One thing read from an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An event: its type (`message` when the stream names none) and its data.
    Event { event: String, data: String },
    /// A comment line (`: text`), e.g. a keep-alive.
    Comment(String),
}

/// Parses `text/event-stream` bytes into frames.
#[derive(Default)]
struct Parser {
    buffer: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl Parser {
    fn push(&mut self, bytes: &[u8], out: &mut VecDeque<Frame>) {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            self.line(&line, out);
        }
    }

    fn line(&mut self, line: &str, out: &mut VecDeque<Frame>) {
        if line.is_empty() {
            if !self.data.is_empty() || self.event.is_some() {
                out.push_back(Frame::Event {
                    event: self.event.take().unwrap_or_else(|| "message".to_owned()),
                    data: std::mem::take(&mut self.data).join("\n"),
                });
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            out.push_back(Frame::Comment(comment.trim_start().to_owned()));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {} // id, retry: not used by this transport
        }
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Reads frames from a streaming response.
pub struct EventReader {
    body: ByteStream,
    parser: Parser,
    frames: VecDeque<Frame>,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            parser: Parser::default(),
            frames: VecDeque::new(),
        }
    }

    /// The next frame; `None` when the server ended the stream.
    pub async fn next_frame(&mut self) -> Option<Result<Frame, ClientError>> {
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Some(Ok(frame));
            }
            match self.body.next().await? {
                Ok(bytes) => self.parser.push(&bytes, &mut self.frames),
                Err(error) => return Some(Err(error.into())),
            }
        }
    }

    /// The next event, skipping comments: `(event type, data)`.
    pub async fn next_event(&mut self) -> Option<Result<(String, String), ClientError>> {
        loop {
            match self.next_frame().await? {
                Ok(Frame::Event { event, data }) => return Some(Ok((event, data))),
                Ok(Frame::Comment(_)) => continue,
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

/// An open stream: its POST URL and the events after the endpoint event.
pub struct Connection {
    pub endpoint: Url,
    pub events: EventReader,
    pub response_headers: HeaderMap,
    http: reqwest::Client,
    headers: HeaderMap,
}

/// Opens a stream at `url` with `headers` (e.g. `Authorization`) and reads its endpoint
/// event. A status other than 200 is [`ClientError::Status`].
pub async fn open(
    http: &reqwest::Client,
    url: &Url,
    headers: HeaderMap,
) -> Result<Connection, ClientError> {
    let response = http
        .get(url.clone())
        .headers(headers.clone())
        .header(ACCEPT, "text/event-stream")
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::OK {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        return Err(ClientError::Status { status, body });
    }
    let response_headers = response.headers().clone();
    let mut events = EventReader::new(response);
    let endpoint = loop {
        match events.next_event().await {
            Some(Ok((event, data))) if event == "endpoint" => break data,
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error),
            None => return Err(ClientError::NoEndpoint),
        }
    };
    let endpoint = url
        .join(&endpoint)
        .map_err(|e| ClientError::BadEndpoint(format!("{endpoint}: {e}")))?;
    // As the reference clients do: never POST the session's messages to another origin.
    if endpoint.origin() != url.origin() {
        return Err(ClientError::BadEndpoint(format!(
            "{endpoint} is not on the stream's origin"
        )));
    }
    Ok(Connection {
        endpoint,
        events,
        response_headers,
        http: http.clone(),
        headers,
    })
}

impl Connection {
    /// POSTs raw bytes to the endpoint (tests use this to send bad input).
    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
    }

    /// POSTs a JSON value to the endpoint.
    pub async fn post_json(&self, body: &serde_json::Value) -> reqwest::Result<reqwest::Response> {
        self.post_raw(body.to_string()).await
    }

    /// The session id of the endpoint URL.
    pub fn session_id(&self) -> Option<String> {
        self.endpoint
            .query_pairs()
            .find(|(k, _)| k == "sessionId")
            .map(|(_, v)| v.into_owned())
    }

    /// An rmcp client transport over this stream.
    pub fn into_transport(self) -> SseClientTransport {
        SseClientTransport { connection: self }
    }
}

/// Opens a stream and returns an rmcp client transport: `().serve(connect(…).await?)`.
pub async fn connect(url: &str, headers: HeaderMap) -> Result<SseClientTransport, ClientError> {
    let url = Url::parse(url).map_err(|e| ClientError::BadEndpoint(format!("{url}: {e}")))?;
    let http = reqwest::Client::new();
    Ok(open(&http, &url, headers).await?.into_transport())
}

/// `Authorization: Bearer <token>` as a header map, for [`connect`] and [`open`].
pub fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    headers
}

/// The rmcp client side of the old transport.
pub struct SseClientTransport {
    connection: Connection,
}

impl SseClientTransport {
    pub fn endpoint(&self) -> &Url {
        &self.connection.endpoint
    }
}

impl Transport<RoleClient> for SseClientTransport {
    type Error = ClientError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let request = self
            .connection
            .http
            .post(self.connection.endpoint.clone())
            .headers(self.connection.headers.clone())
            .header(CONTENT_TYPE, "application/json");
        async move {
            let body = serde_json::to_vec(&item)?;
            let response = request.body(body).send().await?;
            if !response.status().is_success() {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                return Err(ClientError::Status { status, body });
            }
            Ok(())
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            match self.connection.events.next_event().await? {
                Ok((event, data)) if event == "message" => match serde_json::from_str(&data) {
                    Ok(message) => return Some(message),
                    Err(error) => tracing::warn!(%error, "ignoring an unreadable message event"),
                },
                Ok(_) => continue,
                Err(error) => {
                    tracing::debug!(%error, "SSE stream failed");
                    return None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_comments_and_split_chunks() {
        let mut parser = Parser::default();
        let mut out = VecDeque::new();
        parser.push(
            b"event: endpoint\r\ndata: /messages?sessionId=1\r\n\r\n: keep",
            &mut out,
        );
        parser.push(b"-alive\n\nevent: message\ndata: {\"a\":1}\n\n", &mut out);
        assert_eq!(
            Vec::from(out),
            vec![
                Frame::Event {
                    event: "endpoint".into(),
                    data: "/messages?sessionId=1".into()
                },
                Frame::Comment("keep-alive".into()),
                Frame::Event {
                    event: "message".into(),
                    data: "{\"a\":1}".into()
                },
            ]
        );
    }
}
