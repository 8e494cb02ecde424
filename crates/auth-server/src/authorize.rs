//! The authorization endpoint: validate the request, show our consent page, send the user to
//! Layer's login, and on the way back issue a one-time code to the client (with RFC 9207 `iss`).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use url::Url;

use crate::AppState;
use crate::clients::{ClientLookupError, is_metadata_document_id, resolve_client};
use crate::config::SCOPE;
use crate::consent::{ConsentView, consent_page, error_response, html};
use crate::crypto::{constant_time_eq, is_pkce_string, random_token, token_hash};
use crate::error::ErrorCode;
use crate::model::{
    AuthorizationRequest, ClientRecord, CodeRecord, GrantId, GrantRecord, PendingAuthorization,
    UpstreamLogin, now_millis,
};
use crate::store::StoreError;
use crate::uris::{normalise_resource, redirect_matches};

/// Path the consent form posts to.
pub const CONSENT_PATH: &str = "/authorize/consent";
/// Path Layer's identity provider returns the browser to.
pub const CALLBACK_PATH: &str = "/oauth/layer/callback";

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// The cookie that identifies a browser across consent and callback. `__Host-` (Secure, no
/// Domain, Path=/) wherever browsers keep such cookies: https and loopback origins. On a
/// plain-http non-loopback origin (only ever a test or private setup) browsers drop Secure
/// cookies, so a plain name without Secure is used there.
fn cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies() {
        "__Host-layer-mcp-browser"
    } else {
        "layer-mcp-browser"
    }
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

fn set_cookie(state: &AppState, value: &str) -> String {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        cookie_name(state),
        state.config.consent_ttl.as_secs().max(60)
    )
}

/// Ties a consent (and the login after it) to one browser and one client.
fn browser_binding(cookie: &str, client_id: &str) -> String {
    token_hash("browser-binding", &format!("{cookie}\u{0}{client_id}"))
}

/// Redirects to a client redirect URI with OAuth response parameters appended (or says
/// that the URI is not a valid URL).
fn redirect_to_client(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The application's redirect address is not a valid URL.",
            "invalid_request",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    found(url.as_str())
}

/// A redirect to the client carrying an error (RFC 6749 §4.1.2.1, with RFC 9207 `iss`).
fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    code: ErrorCode,
    description: &str,
) -> Response {
    let issuer = state.config.issuer();
    let mut params = vec![("error", code.as_str()), ("error_description", description)];
    if let Some(s) = client_state {
        params.push(("state", s));
    }
    params.push(("iss", &issuer));
    redirect_to_client(redirect_uri, &params)
}

/// 302 with `Cache-Control: no-store`.
fn found(location: &str) -> Response {
    let mut r = Redirect::to(location).into_response();
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Where a redirect URI returns to, for the consent page: the host (with a non-default port)
/// of a web redirect, the scheme and host of an app's own scheme.
fn redirect_target(redirect_uri: &str) -> String {
    let Ok(u) = Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    match (u.scheme(), u.host_str()) {
        ("http" | "https", Some(h)) => match u.port() {
            Some(p) if !crate::config::is_loopback_host(&u) => format!("{h}:{p}"),
            _ => h.to_owned(),
        },
        (scheme, Some(h)) if !h.is_empty() => format!("{scheme}://{h} (an app on your device)"),
        (scheme, _) => format!("{scheme}: (an app on your device)"),
    }
}

/// A single-use record just taken from the store, or the page to answer: "expired" (with
/// `title` and `message`) when it was already used or is too old, "unavailable" when the
/// store could not answer.
#[expect(
    clippy::result_large_err,
    reason = "the error is the page to answer at once, as axum handlers return it"
)]
fn single_use<T>(
    taken: Result<Option<T>, StoreError>,
    title: &str,
    message: &str,
) -> Result<T, Response> {
    match taken {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(error_response(
            StatusCode::BAD_REQUEST,
            title,
            message,
            "invalid_request",
        )),
        Err(_) => Err(client_error_page(&ClientLookupError::Unavailable)),
    }
}

fn client_error_page(e: &ClientLookupError) -> Response {
    match e {
        ClientLookupError::Unavailable => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment",
            "Layer's connection service is briefly unavailable.",
            "temporarily_unavailable",
        ),
        other => error_response(
            StatusCode::BAD_REQUEST,
            "This application is not recognised",
            &other.to_string(),
            "invalid_client",
        ),
    }
}

/// `GET /authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let param = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());

    // Until the client and its redirect URI are known good, errors go to an error page:
    // redirecting to an unverified URI would make this an open redirector.
    let Some(client_id) = param("client_id") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Missing client",
            "The request does not say which application is asking (no client_id).",
            "invalid_request",
        );
    };
    let client = match resolve_client(&state, client_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(client_id = ?client_id, error = %e, "authorization refused: client");
            return client_error_page(&e);
        }
    };
    let redirect_uri = match param("redirect_uri") {
        Some(r)
            if client
                .redirect_uris
                .iter()
                .any(|reg| redirect_matches(reg, r)) =>
        {
            r.to_owned()
        }
        Some(r) => {
            tracing::info!(
                client_id,
                redirect_uri = r,
                "authorization refused: redirect_uri"
            );
            return error_response(
                StatusCode::BAD_REQUEST,
                "Unregistered redirect address",
                &format!(
                    "The application asked to return to {r}, which it did not register. \
                     Nothing was sent there."
                ),
                "invalid_request",
            );
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Missing redirect address",
                "The request has no redirect_uri and the application registered several.",
                "invalid_request",
            );
        }
    };
    let client_state = param("state");
    let fail = |code: ErrorCode, description: &str| {
        tracing::info!(
            client_id,
            error = code.as_str(),
            description,
            "authorization refused"
        );
        error_redirect(&state, &redirect_uri, client_state, code, description)
    };
    if param("response_type") != Some("code") {
        return fail(
            ErrorCode::UnsupportedResponseType,
            "response_type must be code",
        );
    }
    let Some(client_state) = client_state else {
        return fail(ErrorCode::InvalidRequest, "state is required");
    };
    if client_state.len() > 1024 {
        return fail(ErrorCode::InvalidRequest, "state is too long");
    }
    let Some(challenge) = param("code_challenge") else {
        return fail(
            ErrorCode::InvalidRequest,
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        );
    };
    if param("code_challenge_method") != Some("S256") {
        return fail(
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256 (plain is not accepted)",
        );
    }
    if !is_pkce_string(challenge) {
        return fail(ErrorCode::InvalidRequest, "code_challenge is malformed");
    }
    let resource = match param("resource") {
        None => state.config.resource(),
        Some(r) => match accepted_resource(&state, r) {
            Some(canonical) => canonical,
            None => {
                return fail(
                    ErrorCode::InvalidTarget,
                    "resource must be this server's MCP endpoint",
                );
            }
        },
    };
    let request = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri,
        state: client_state.to_owned(),
        code_challenge: challenge.to_owned(),
        resource,
        // One scope; whatever else was asked for (openid, offline_access…) is not granted.
        scope: SCOPE.to_owned(),
    };
    show_consent(&state, &client, request, &headers).await
}

/// The canonical resource if `raw` names this server (its MCP endpoint or its origin, with
/// case and trailing slashes normalised), else `None`.
pub fn accepted_resource(state: &AppState, raw: &str) -> Option<String> {
    let normalised = normalise_resource(raw)?;
    let canonical = state.config.resource();
    let origin = normalise_resource(&state.config.issuer())?;
    (normalised == canonical || normalised == origin).then_some(canonical)
}

async fn show_consent(
    state: &AppState,
    client: &ClientRecord,
    request: AuthorizationRequest,
    headers: &HeaderMap,
) -> Response {
    let now = now_millis();
    let cookie = read_cookie(headers, cookie_name(state)).unwrap_or_else(|| random_token(""));
    let csrf = random_token("");
    let pending = PendingAuthorization {
        id: random_token(""),
        csrf_hash: token_hash("csrf", &csrf),
        browser_binding: browser_binding(&cookie, client.id.as_str()),
        request,
        expires_at: now + millis(state.config.consent_ttl),
    };
    if let Err(e) = state.store.put_pending(&pending).await {
        tracing::error!(error = %e, "store failure");
        return client_error_page(&ClientLookupError::Unavailable);
    }
    let _ = state.store.touch_client(&client.id, now).await;
    let page = consent_page(&ConsentView {
        client_name: client.name.as_deref(),
        client_id: client.id.as_str(),
        client_id_is_url: is_metadata_document_id(client.id.as_str()),
        redirect_host: &redirect_target(&pending.request.redirect_uri),
        pending_id: &pending.id,
        csrf_token: &csrf,
        action: CONSENT_PATH,
    });
    html(StatusCode::OK, page, Some(set_cookie(state, &cookie)))
}

/// The consent form.
#[derive(Debug, serde::Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    pending: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    decision: String,
}

/// `POST /authorize/consent`.
pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let now = now_millis();
    // Single use: taken whatever happens next.
    let taken = state.store.take_pending(&form.pending, now).await;
    let pending = match single_use(
        taken,
        "This page has expired",
        "The consent page was already used or is too old.",
    ) {
        Ok(p) => p,
        Err(page) => return page,
    };
    let csrf_ok = !form.csrf_token.is_empty()
        && constant_time_eq(
            token_hash("csrf", &form.csrf_token).as_bytes(),
            pending.csrf_hash.as_bytes(),
        );
    let browser_ok = read_cookie(&headers, cookie_name(&state)).is_some_and(|c| {
        constant_time_eq(
            browser_binding(&c, pending.request.client_id.as_str()).as_bytes(),
            pending.browser_binding.as_bytes(),
        )
    });
    if !csrf_ok || !browser_ok {
        tracing::warn!(
            client_id = %pending.request.client_id,
            csrf_ok,
            browser_ok,
            "consent refused: CSRF check failed"
        );
        return error_response(
            StatusCode::FORBIDDEN,
            "Request not verified",
            "This consent did not come from the page we showed in this browser.",
            "invalid_request",
        );
    }
    let request = pending.request;
    if form.decision != "approve" {
        return see_other_error(
            &state,
            &request,
            ErrorCode::AccessDenied,
            "the user declined",
        );
    }
    let upstream_state = random_token("");
    let state_hash = token_hash("upstream-state", &upstream_state);
    let (url, sealed) = match state.idp.begin_login(&upstream_state, &state_hash).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the Layer login");
            return see_other_error(
                &state,
                &request,
                ErrorCode::TemporarilyUnavailable,
                "Layer's login service is unavailable; try again shortly",
            );
        }
    };
    let login = UpstreamLogin {
        state_hash,
        browser_binding: pending.browser_binding,
        request,
        sealed_secrets: sealed,
        expires_at: now + millis(state.config.consent_ttl),
    };
    if let Err(e) = state.store.put_login(&login).await {
        tracing::error!(error = %e, "store failure");
        return client_error_page(&ClientLookupError::Unavailable);
    }
    see_other(url.as_str())
}

fn see_other(location: &str) -> Response {
    let mut r = Redirect::to(location).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn see_other_error(
    state: &AppState,
    request: &AuthorizationRequest,
    code: ErrorCode,
    description: &str,
) -> Response {
    let mut r = error_redirect(
        state,
        &request.redirect_uri,
        Some(&request.state),
        code,
        description,
    );
    if r.status() == StatusCode::FOUND {
        *r.status_mut() = StatusCode::SEE_OTHER;
    }
    r
}

/// `GET /oauth/callback`: Layer's identity provider sends the browser back here.
pub async fn callback(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let now = now_millis();
    let Some(upstream_state) = q.get("state") else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Login not recognised",
            "Layer's login answer has no state.",
            "invalid_request",
        );
    };
    let state_hash = token_hash("upstream-state", upstream_state);
    let taken = state.store.take_login(&state_hash, now).await;
    let login = match single_use(
        taken,
        "This login has expired",
        "The login was already completed or took too long. Start again from the application.",
    ) {
        Ok(l) => l,
        Err(page) => return page,
    };
    // The browser finishing the login must be the one that gave consent (login CSRF).
    let browser_ok = read_cookie(&headers, cookie_name(&state)).is_some_and(|c| {
        constant_time_eq(
            browser_binding(&c, login.request.client_id.as_str()).as_bytes(),
            login.browser_binding.as_bytes(),
        )
    });
    if !browser_ok {
        tracing::warn!(client_id = ?login.request.client_id, "callback refused: other browser");
        return error_response(
            StatusCode::FORBIDDEN,
            "Login not verified",
            "This login was started in another browser.",
            "invalid_request",
        );
    }
    let request = login.request;
    // Errors from here on go back to the client, with its state.
    let to_client = |code: ErrorCode, description: &str| {
        error_redirect(
            &state,
            &request.redirect_uri,
            Some(&request.state),
            code,
            description,
        )
    };
    if let Some(error) = q.get("error") {
        tracing::info!(error, "Layer login ended with an error");
        let code = if error == "access_denied" {
            ErrorCode::AccessDenied
        } else {
            ErrorCode::ServerError
        };
        return to_client(code, "the Layer login did not complete");
    }
    let Some(code) = q.get("code") else {
        return to_client(ErrorCode::ServerError, "Layer's login answer had no code");
    };
    let result = match state
        .idp
        .finish_login(code, &login.sealed_secrets, &state_hash)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "the Layer login failed");
            return to_client(
                ErrorCode::ServerError,
                "the Layer login could not be completed",
            );
        }
    };
    let grant_id = GrantId::new(random_token("lmg_"));
    let grant = GrantRecord {
        id: grant_id.clone(),
        subject: result.subject,
        client_id: request.client_id.clone(),
        scope: request.scope.clone(),
        resource: request.resource.clone(),
        created_at: now,
        revoked_at: None,
        upstream: state.idp.seal(&grant_id, &result.tokens, 0),
    };
    let code = random_token("lmac_");
    let record = CodeRecord {
        hash: token_hash("code", &code),
        grant_id: grant_id.clone(),
        request: request.clone(),
        expires_at: now + millis(state.config.code_ttl),
    };
    let mut stored = state.store.create_grant(&grant).await;
    if stored.is_ok() {
        stored = state.store.put_code(&record).await;
    }
    if let Err(e) = stored {
        tracing::error!(error = %e, "store failure");
        return client_error_page(&ClientLookupError::Unavailable);
    }
    tracing::info!(client_id = ?request.client_id, grant = %grant_id, subject = %grant.subject, "authorization granted");
    let issuer = state.config.issuer();
    redirect_to_client(
        &request.redirect_uri,
        &[("code", &code), ("state", &request.state), ("iss", &issuer)],
    )
}
