//! A POST's request, carried to the replica holding its stream.
//!
//! `http::request::Parts` cannot cross processes: its extensions (the authenticated caller,
//! connection info) are live objects. What crosses is what is needed to rebuild them:
//! method, URI, version and a short allow-list of headers (the credential, the request id).
//! The holder rebuilds `Parts` from it and hands them to the application's
//! [`RebuildParts`] hook, which re-runs authentication and puts back what its layers would
//! have put into the extensions.

use http::{HeaderName, HeaderValue, Method, Uri, Version};
use serde::{Deserialize, Serialize};

use crate::directory::DeliveryError;

/// Restores what an application's layers put into a forwarded request's extensions.
///
/// Called on the replica holding the stream, for each POST that landed on another replica,
/// with `Parts` rebuilt from the forwarded method, URI, version and headers (extensions
/// empty). An error is the POST's answer (e.g. [`DeliveryError::Unavailable`] when the
/// authenticator cannot be reached); a credential no longer accepted is best answered
/// [`DeliveryError::NotFound`], like any session the sender may not use.
#[async_trait::async_trait]
pub trait RebuildParts: Send + Sync + 'static {
    async fn rebuild(
        &self,
        parts: http::request::Parts,
    ) -> Result<http::request::Parts, DeliveryError>;
}

/// A [`RebuildParts`] that adds nothing: for applications whose handlers read only the
/// forwarded headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadersOnly;

#[async_trait::async_trait]
impl RebuildParts for HeadersOnly {
    async fn rebuild(
        &self,
        parts: http::request::Parts,
    ) -> Result<http::request::Parts, DeliveryError> {
        Ok(parts)
    }
}

/// The serializable part of a request. Not `Debug`: it holds the credential.
#[derive(Serialize, Deserialize)]
pub(crate) struct ForwardedRequest {
    method: String,
    uri: String,
    version: u8,
    /// Allow-listed headers whose values are text (a credential always is).
    headers: Vec<(String, String)>,
}

impl ForwardedRequest {
    pub(crate) fn from_parts(parts: &http::request::Parts, forward: &[HeaderName]) -> Self {
        let headers = forward
            .iter()
            .flat_map(|name| {
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .map(|value| (name.as_str().to_owned(), value.to_owned()))
            })
            .collect();
        Self {
            method: parts.method.as_str().to_owned(),
            uri: parts.uri.to_string(),
            version: match parts.version {
                Version::HTTP_09 => 9,
                Version::HTTP_10 => 10,
                Version::HTTP_2 => 20,
                Version::HTTP_3 => 30,
                _ => 11,
            },
            headers,
        }
    }

    /// `Parts` with the forwarded method, URI, version and headers, no extensions. `None`
    /// if something does not parse (it was valid where it came from, so this means a
    /// foreign or corrupt message).
    pub(crate) fn into_parts(self) -> Option<http::request::Parts> {
        let mut builder = http::Request::builder()
            .method(Method::from_bytes(self.method.as_bytes()).ok()?)
            .uri(self.uri.parse::<Uri>().ok()?)
            .version(match self.version {
                9 => Version::HTTP_09,
                10 => Version::HTTP_10,
                20 => Version::HTTP_2,
                30 => Version::HTTP_3,
                _ => Version::HTTP_11,
            });
        for (name, value) in self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let mut value = HeaderValue::from_str(&value).ok()?;
            if name == http::header::AUTHORIZATION {
                // A Debug of these parts shows "Sensitive", as on the original request.
                value.set_sensitive(true);
            }
            builder = builder.header(name, value);
        }
        Some(builder.body(()).ok()?.into_parts().0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allow_listed_headers_cross_and_parts_come_back() {
        let (parts, ()) = http::Request::builder()
            .method(Method::POST)
            .uri("/messages?sessionId=abc")
            .header("authorization", "Bearer secret")
            .header("x-request-id", "r-1")
            .header("cookie", "not forwarded")
            .body(())
            .unwrap()
            .into_parts();
        let forward = [
            http::header::AUTHORIZATION,
            HeaderName::from_static("x-request-id"),
        ];
        let json = serde_json::to_string(&ForwardedRequest::from_parts(&parts, &forward)).unwrap();
        assert!(!json.contains("cookie"), "{json}");
        let back: ForwardedRequest = serde_json::from_str(&json).unwrap();
        let rebuilt = back.into_parts().unwrap();
        assert_eq!(rebuilt.method, Method::POST);
        assert_eq!(rebuilt.uri, "/messages?sessionId=abc");
        assert_eq!(rebuilt.headers["authorization"], "Bearer secret");
        assert!(rebuilt.headers["authorization"].is_sensitive());
        assert_eq!(rebuilt.headers["x-request-id"], "r-1");
        assert!(rebuilt.headers.get("cookie").is_none());
        assert!(!format!("{rebuilt:?}").contains("secret"));
    }
}
