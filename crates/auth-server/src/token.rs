//! The token endpoint (code exchange, refresh rotation with a grace window, reuse detection)
//! and revocation (RFC 7009).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::AppState;
use crate::authorize::accepted_resource;
use crate::clients::{authenticate_client, presented_client};
use crate::crypto::{constant_time_eq, is_pkce_string, pkce_s256, random_token, token_hash};
use crate::error::{ErrorCode, OAuthError};
use crate::jwt::AccessClaims;
use crate::model::{ClientRecord, GrantRecord, RefreshRecord, RotateOutcome, TakeCode, now_millis};

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// A form field the request cannot go without.
fn required<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a String, OAuthError> {
    form.get(name)
        .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
}

fn parse_form(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if map.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "parameter {k} is repeated"
            )));
        }
    }
    Ok(map)
}

/// `POST /token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match token_inner(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = e.code.as_str(), description = ?e.description, "token request refused");
            e.into_response()
        }
    }
}

async fn token_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let form = parse_form(headers, body)?;
    let presented = presented_client(headers, &form)?;
    let client = authenticate_client(state, &presented).await?;
    if let Some(r) = form.get("resource")
        && accepted_resource(state, r).is_none()
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "resource must be this server's MCP endpoint",
        ));
    }
    let _ = state.store.touch_client(&client.id, now_millis()).await;
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(state, &client, &form).await,
        Some("refresh_token") => refresh(state, &client, required(&form, "refresh_token")?).await,
        Some(other) => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "grant_type {other:?} is not supported; use authorization_code or refresh_token"
            ),
        )),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

async fn exchange_code(
    state: &AppState,
    client: &ClientRecord,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthError> {
    let code = required(form, "code")?;
    let now = now_millis();
    // Spent at once, whatever follows: a code is good for one attempt.
    let record = match state
        .store
        .take_code(&token_hash("code", code), now)
        .await?
    {
        TakeCode::Fresh(r) => r,
        TakeCode::Expired(r) => {
            state.store.revoke_grant(&r.grant_id, now).await?;
            return Err(OAuthError::invalid_grant(
                "the authorization code has expired",
            ));
        }
        TakeCode::Replayed(grant) => {
            tracing::warn!(%grant, "authorization code replayed; grant revoked");
            return Err(OAuthError::invalid_grant(
                "the authorization code was already used; every token issued from it is revoked",
            ));
        }
        TakeCode::NotFound => {
            return Err(OAuthError::invalid_grant("unknown authorization code"));
        }
    };
    let refuse = |description: &str| {
        let description = description.to_owned();
        let grant = record.grant_id.clone();
        async move {
            state.store.revoke_grant(&grant, now).await?;
            Err::<Response, OAuthError>(OAuthError::invalid_grant(description))
        }
    };
    if record.request.client_id != client.id {
        return refuse("the authorization code was issued to another client").await;
    }
    if let Some(uri) = form.get("redirect_uri")
        && *uri != record.request.redirect_uri
    {
        return refuse("redirect_uri does not match the authorization request").await;
    }
    let Some(verifier) = form.get("code_verifier") else {
        return refuse("code_verifier is required (PKCE)").await;
    };
    if !is_pkce_string(verifier)
        || !constant_time_eq(
            pkce_s256(verifier).as_bytes(),
            record.request.code_challenge.as_bytes(),
        )
    {
        return refuse("code_verifier does not match the code_challenge").await;
    }
    let Some(grant) = state
        .store
        .get_grant(&record.grant_id)
        .await?
        .filter(GrantRecord::is_live)
    else {
        return Err(OAuthError::invalid_grant("the authorization was revoked"));
    };
    let refresh = random_token("lmr_");
    state
        .store
        .put_refresh(&RefreshRecord {
            hash: token_hash("refresh", &refresh),
            grant_id: grant.id.clone(),
            client_id: client.id.clone(),
            issued_at: now,
            expires_at: now + millis(state.config.refresh_token_ttl),
            rotated_at: None,
        })
        .await?;
    tracing::info!(client_id = %client.id, grant = %grant.id, "issued tokens for a code");
    token_response(state, &grant, &refresh)
}

/// Rotates the refresh token `old` presented by `client`.
async fn refresh(
    state: &AppState,
    client: &ClientRecord,
    old: &str,
) -> Result<Response, OAuthError> {
    let now = now_millis();
    let new = random_token("lmr_");
    let record = RefreshRecord {
        hash: token_hash("refresh", &new),
        grant_id: crate::model::GrantId::new(""),
        client_id: client.id.clone(),
        issued_at: now,
        expires_at: now + millis(state.config.refresh_token_ttl),
        rotated_at: None,
    };
    let grace = millis(state.config.refresh_grace);
    let outcome = state
        .store
        .rotate_refresh(&token_hash("refresh", old), &client.id, &record, now, grace)
        .await?;
    let grant = match outcome {
        RotateOutcome::Rotated(g) => g,
        RotateOutcome::WithinGrace(g) => {
            tracing::info!(grant = %g.id, "refresh token reused within the grace window");
            g
        }
        RotateOutcome::Reused(grant) => {
            tracing::warn!(%grant, "refresh token reused after rotation; grant revoked");
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used; the authorization is revoked, log in again",
            ));
        }
        RotateOutcome::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid, expired or revoked",
            ));
        }
    };
    token_response(state, &grant, &new)
}

/// Mints an access token for a grant.
pub fn mint_access_token(state: &AppState, grant: &GrantRecord) -> Result<String, OAuthError> {
    let now = now_millis() / 1000;
    let ttl = i64::try_from(state.config.access_token_ttl.as_secs()).unwrap_or(3600);
    let claims = AccessClaims {
        iss: state.config.issuer(),
        sub: grant.subject.as_str().to_owned(),
        aud: state.config.resource(),
        exp: now + ttl,
        iat: now,
        jti: random_token(""),
        client_id: grant.client_id.as_str().to_owned(),
        scope: grant.scope.clone(),
        grant_id: grant.id.as_str().to_owned(),
    };
    let keys = state.keys.read().unwrap_or_else(|p| p.into_inner());
    keys.sign(&claims)
        .ok_or_else(|| OAuthError::new(ErrorCode::ServerError, "could not sign the token"))
}

fn token_response(
    state: &AppState,
    grant: &GrantRecord,
    refresh: &str,
) -> Result<Response, OAuthError> {
    let access = mint_access_token(state, grant)?;
    let body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": state.config.access_token_ttl.as_secs(),
        "refresh_token": refresh,
        "scope": grant.scope,
    });
    let mut response = (StatusCode::OK, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `POST /revoke` (RFC 7009). Either kind of token revokes the whole grant: the refresh
/// token family and every access token (checked against the grant on each use).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match revoke_inner(&state, &headers, &body).await {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn revoke_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), OAuthError> {
    let form = parse_form(headers, body)?;
    let presented = presented_client(headers, &form)?;
    let client = authenticate_client(state, &presented).await?;
    let token = required(&form, "token")?;
    let now = now_millis();
    let grant_id = if let Some(r) = state
        .store
        .get_refresh(&token_hash("refresh", token))
        .await?
    {
        (r.client_id == client.id).then_some(r.grant_id)
    } else {
        match crate::verify_access_token(state, token).await {
            Ok(claims) => (claims.client_id == client.id.as_str())
                .then(|| crate::model::GrantId::new(claims.grant_id)),
            Err(crate::VerifyError::Store(e)) => return Err(e.into()),
            // RFC 7009 §2.2: an unknown token is not an error.
            Err(crate::VerifyError::Token(_)) => None,
        }
    };
    if let Some(grant_id) = grant_id {
        let grant = state.store.get_grant(&grant_id).await?;
        if state.store.revoke_grant(&grant_id, now).await? {
            tracing::info!(grant = %grant_id, client_id = %client.id, "grant revoked by the client");
            if let Some(grant) = grant {
                let idp = state.idp.clone();
                tokio::spawn(async move { idp.revoke_upstream(&grant).await });
            }
        }
    }
    Ok(())
}
