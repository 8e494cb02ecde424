//! Uploads (models.py `RequestUploadUrlRequest`, `RequestUploadUrlResponse`).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::enums::FileSourceType;
use crate::ids::FileId;

/// Body of `POST /workspaces/{ws}/files/upload-url`.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct UploadUrlRequest {
    /// MIME type of the file: PNG, JPEG, WebP (100 MB), MP4 (5 GB), WAV/MP3 (64 MB).
    pub content_type: String,
    /// Exact size in bytes; the upload must send exactly this many. Greater than zero.
    pub file_size_bytes: u64,
    /// File name, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// `mask` for an inpainting mask, `reference`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<FileSourceType>,
}

impl UploadUrlRequest {
    /// A request for a file of this type and size.
    pub fn new(content_type: impl Into<String>, file_size_bytes: u64) -> Self {
        Self {
            content_type: content_type.into(),
            file_size_bytes,
            file_name: None,
            source_type: None,
        }
    }
}

/// The grant: the file's id and where to send its bytes.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct UploadGrant {
    /// Usable as a guidance file once the bytes are uploaded.
    pub file_id: FileId,
    /// Signed resumable-upload URL, valid 15 minutes.
    pub upload_url: SignedUrl,
    /// MIME type to upload with.
    pub content_type: String,
    /// Echo of the request's source type.
    #[serde(default)]
    pub source_type: Option<FileSourceType>,
}

/// A signed storage URL. Its query string is a credential, so `Debug` shows only the
/// origin and path.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignedUrl(String);

impl SignedUrl {
    /// Wraps a URL the API handed out.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, signature included. Reveal it only to whom the upload is for.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn parse(&self) -> Option<Url> {
        Url::parse(&self.0).ok()
    }
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parse() {
            Some(url) => write!(
                f,
                "SignedUrl({}{}?***)",
                url.origin().ascii_serialization(),
                url.path()
            ),
            None => f.write_str("SignedUrl(***)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_url_debug_hides_the_signature() {
        let url = SignedUrl::new(
            "https://storage.example/bucket/obj?X-Goog-Signature=deadbeef&X-Goog-Expires=900",
        );
        let shown = format!("{url:?}");
        assert_eq!(shown, "SignedUrl(https://storage.example/bucket/obj?***)");
        assert!(!shown.contains("deadbeef"));
        assert_eq!(
            format!("{:?}", SignedUrl::new("::nonsense")),
            "SignedUrl(***)"
        );
    }
}
