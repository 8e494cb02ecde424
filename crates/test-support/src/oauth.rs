//! Playing an OAuth client's user: a browser driven step by step, and PKCE.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};
use url::Url;

/// An HTTP client that follows no redirect by itself and keeps cookies by hand, like a
/// browser driven one step at a time: the test sees every page and every redirect.
pub struct Browser {
    pub http: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// One answer the browser got.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The `Location` header (where a redirect sends the browser).
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The `value` of the (hidden) input named `name`, with `&amp;` decoded.
    pub fn input(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].replace("&amp;", "&"))
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: HashMap::new(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.send(self.http.get(url)).await
    }

    /// POSTs `form` as `application/x-www-form-urlencoded`.
    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Sends `request` with the cookies kept so far, and keeps the ones it sets.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request
            .header("cookie", cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("request: {e}"));
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }
}

/// A fresh PKCE pair: a random verifier (43 base64url characters) and its S256 challenge.
pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// An authorization request for a client using PKCE (S256): `endpoint` with
/// `response_type=code`, the client, its redirect URI, `state` and the challenge, then
/// `extra` (e.g. `resource`, `scope`).
pub fn authorization_url(
    endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> Url {
    let mut url = Url::parse(endpoint).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .extend_pairs(extra);
    url
}

/// Redeems a public client's authorization `code` at `token_endpoint` with the PKCE
/// `verifier`; the token response, which must be a 200.
pub async fn redeem_code(
    token_endpoint: &str,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> serde_json::Value {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    let (status, tokens) = post_form(token_endpoint, &form).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// POSTs `form` (`application/x-www-form-urlencoded`, as `/token` and `/revoke` take it)
/// with a fresh client; the status and the JSON answer (`Null` if it is not JSON).
pub async fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// The query parameters of a URL.
pub fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}
