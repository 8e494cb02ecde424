//! The Google Cloud Storage resumable upload behind `files/upload-url`:
//! `POST <signed url>` with `x-goog-resumable: start` answers with the session URI in
//! `Location`; one `PUT` of exactly the announced number of bytes to it finishes the upload.
//! No bearer token goes to storage: the signed URL is the credential.

use bytes::Bytes;
use futures::TryStream;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use url::Url;

use crate::client::LayerClient;
use crate::error::{Error, Result, UploadStage};
use crate::transport::retry_delay;
use crate::types::files::SignedUrl;

/// The bytes of an upload: in memory, or a stream of known length.
pub struct UploadBody {
    len: u64,
    source: Source,
}

enum Source {
    Bytes(Bytes),
    Stream(reqwest::Body),
}

impl std::fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadBody")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl UploadBody {
    /// Bytes in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            len: bytes.len() as u64,
            source: Source::Bytes(bytes),
        }
    }

    /// A stream that yields exactly `len` bytes (storage refuses any other count).
    pub fn from_stream<S>(stream: S, len: u64) -> Self
    where
        S: TryStream + Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        Bytes: From<S::Ok>,
    {
        Self {
            len,
            source: Source::Stream(reqwest::Body::wrap_stream(stream)),
        }
    }

    /// Number of bytes to send.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there is nothing to send (which the API does not allow).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

const START_ENDPOINT: &str = "POST <signed upload URL>";
const PUT_ENDPOINT: &str = "PUT <upload session URI>";

impl LayerClient {
    /// Uploads `body` to a signed resumable-upload URL from
    /// [`crate::AuthedClient::request_upload_url`]: starts the session (retried like any safe
    /// call, since a session that is never used costs nothing), then sends the bytes in one
    /// `PUT`. If that `PUT` breaks (connection lost, timeout, 5xx) and the body is in memory,
    /// the client asks storage how far it got and sends the rest, as the resumable protocol
    /// allows; a streamed body gets one attempt.
    pub async fn upload_bytes(
        &self,
        upload_url: &SignedUrl,
        content_type: &str,
        body: UploadBody,
    ) -> Result<()> {
        let url = upload_url
            .parse()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Error::InvalidRequest("the upload URL is not an http(s) URL".to_owned())
            })?;
        if body.is_empty() {
            return Err(Error::InvalidRequest(
                "an upload must contain at least one byte".to_owned(),
            ));
        }
        let content_type = HeaderValue::from_str(content_type).map_err(|_| {
            Error::InvalidRequest("the content type is not a valid header value".to_owned())
        })?;
        let session = self.start_session(&url, &content_type, body.len).await?;
        self.put_bytes(session, content_type, body).await
    }

    async fn start_session(&self, url: &Url, content_type: &HeaderValue, len: u64) -> Result<Url> {
        let retry = &self.config().retry;
        let mut attempt = 1;
        loop {
            let outcome = self.start_once(url, content_type, len).await;
            match outcome {
                Ok(session) => return Ok(session),
                Err(error) => {
                    let delay = match &error {
                        Error::Upload { status, .. } if status.is_server_error() => {
                            Some(retry.backoff(attempt))
                        }
                        other => retry_delay(retry, other, attempt),
                    };
                    match delay {
                        Some(delay) if attempt < retry.max_attempts => {
                            tracing::info!(attempt, error = %error, "retrying upload start");
                            tokio::time::sleep(delay).await;
                            attempt += 1;
                        }
                        _ => return Err(error),
                    }
                }
            }
        }
    }

    async fn start_once(&self, url: &Url, content_type: &HeaderValue, len: u64) -> Result<Url> {
        let response = self
            .http()
            .post(url.clone())
            .timeout(self.config().request_timeout)
            .header("x-goog-resumable", "start")
            .header(header::CONTENT_TYPE, content_type.clone())
            .header(header::CONTENT_LENGTH, 0)
            .header("x-goog-content-length-range", format!("0,{len}"))
            .send()
            .await
            .map_err(|e| Error::transport(START_ENDPOINT, e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if !status.is_success() {
            return Err(storage_error(UploadStage::Start, status, response).await);
        }
        let location = location.ok_or_else(|| Error::InvalidResponse {
            endpoint: START_ENDPOINT,
            status,
            request_id: None,
            reason: "no Location header with the upload session URI".to_owned(),
        })?;
        // The session URI may be relative to the signed URL.
        url.join(&location).map_err(|_| Error::InvalidResponse {
            endpoint: START_ENDPOINT,
            status,
            request_id: None,
            reason: "the Location header is not a URL".to_owned(),
        })
    }

    async fn put_bytes(
        &self,
        session: Url,
        content_type: HeaderValue,
        body: UploadBody,
    ) -> Result<()> {
        let bytes = match body.source {
            // A stream cannot be replayed: one attempt.
            Source::Stream(stream) => {
                return self
                    .put_once(&session, &content_type, stream, body.len, None)
                    .await;
            }
            Source::Bytes(bytes) => bytes,
        };
        let retry = &self.config().retry;
        let mut offset = 0u64;
        let mut attempt = 1;
        loop {
            let chunk = bytes.slice(
                usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len())..,
            );
            let range = (offset > 0).then_some(offset);
            let error = match self
                .put_once(
                    &session,
                    &content_type,
                    chunk.into(),
                    body.len - offset,
                    range,
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            let retryable = match &error {
                Error::Upload { status, .. } => status.is_server_error(),
                other => retry_delay(retry, other, attempt).is_some(),
            };
            if !retryable || attempt >= retry.max_attempts {
                return Err(error);
            }
            tracing::info!(attempt, error = %error, "upload interrupted; asking storage how far it got");
            tokio::time::sleep(retry.backoff(attempt)).await;
            attempt += 1;
            match self.upload_progress(&session, body.len).await? {
                Progress::Complete => return Ok(()),
                Progress::Received(have) => offset = have,
            }
        }
    }

    /// One `PUT` of the bytes from `offset` (all of them when `None`) to the end.
    async fn put_once(
        &self,
        session: &Url,
        content_type: &HeaderValue,
        body: reqwest::Body,
        len: u64,
        offset: Option<u64>,
    ) -> Result<()> {
        let mut request = self
            .http()
            .put(session.clone())
            .timeout(self.config().upload_timeout)
            .header(header::CONTENT_TYPE, content_type.clone())
            // Explicit, so a stream goes out with a length rather than chunked: storage
            // checks the count against what was announced.
            .header(header::CONTENT_LENGTH, len);
        if let Some(offset) = offset {
            let total = offset + len;
            request = request.header(
                header::CONTENT_RANGE,
                format!("bytes {offset}-{}/{total}", total - 1),
            );
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| Error::transport(PUT_ENDPOINT, e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(storage_error(UploadStage::Put, status, response).await)
        }
    }

    /// Asks the session how many bytes arrived (`Content-Range: bytes */total`): `308` with
    /// `Range: bytes=0-N` (or none, for nothing yet), or `200`/`201` once complete.
    async fn upload_progress(&self, session: &Url, total: u64) -> Result<Progress> {
        let response = self
            .http()
            .put(session.clone())
            .timeout(self.config().request_timeout)
            .header(header::CONTENT_LENGTH, 0)
            .header(header::CONTENT_RANGE, format!("bytes */{total}"))
            .send()
            .await
            .map_err(|e| Error::transport(PUT_ENDPOINT, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(Progress::Complete);
        }
        if status != StatusCode::PERMANENT_REDIRECT {
            return Err(storage_error(UploadStage::Put, status, response).await);
        }
        let received = response
            .headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("bytes=0-"))
            .and_then(|last| last.parse::<u64>().ok())
            .map_or(0, |last| last + 1);
        Ok(Progress::Received(received.min(total)))
    }
}

enum Progress {
    Complete,
    Received(u64),
}

async fn storage_error(
    stage: UploadStage,
    status: StatusCode,
    response: reqwest::Response,
) -> Error {
    let message = response.text().await.ok().and_then(|text| {
        let text = text.trim();
        // Keep storage's words only when short and plain; never an HTML page.
        (!text.is_empty() && !text.starts_with('<')).then(|| text.chars().take(200).collect())
    });
    Error::Upload {
        stage,
        status,
        message,
    }
}
