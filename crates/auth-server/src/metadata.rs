//! Discovery documents: Protected Resource Metadata (RFC 9728), Authorization Server Metadata
//! (RFC 8414), OIDC discovery, and the JWKS of the access-token signing keys.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde_json::{Value, json};

use crate::AppState;
use crate::config::SCOPE;
use crate::model::now_millis;

/// Path of the JWKS.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

fn cached(body: Value, max_age: u32) -> Response {
    let mut r = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

/// The RFC 9728 document for the MCP endpoint.
pub fn protected_resource_document(state: &AppState) -> Value {
    json!({
        "resource": state.config.resource(),
        "authorization_servers": [state.config.issuer()],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "Layer",
        "resource_documentation": "https://docs.layer.ai/",
    })
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`.
pub async fn protected_resource(State(state): State<AppState>) -> Response {
    cached(protected_resource_document(&state), 300)
}

/// The RFC 8414 document.
pub fn authorization_server_document(state: &AppState) -> Value {
    let c = &state.config;
    json!({
        "issuer": c.issuer(),
        "authorization_endpoint": c.url("/authorize"),
        "token_endpoint": c.url("/token"),
        "registration_endpoint": c.url("/register"),
        "revocation_endpoint": c.url("/revoke"),
        "jwks_uri": c.url(JWKS_PATH),
        "scopes_supported": [SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "service_documentation": "https://docs.layer.ai/",
    })
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn authorization_server(State(state): State<AppState>) -> Response {
    cached(authorization_server_document(&state), 300)
}

/// `GET /.well-known/openid-configuration`: the same server described for OIDC-minded
/// clients (we issue no id tokens, so `openid` is not among the scopes).
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let mut doc = authorization_server_document(&state);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("subject_types_supported".into(), json!(["public"]));
        obj.insert(
            "id_token_signing_alg_values_supported".into(),
            json!(["ES256"]),
        );
    }
    cached(doc, 300)
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let keep = state.keep_retired_ms();
    let set = state
        .keys
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .jwks(now_millis(), keep);
    cached(
        serde_json::to_value(set).unwrap_or_else(|_| json!({"keys": []})),
        300,
    )
}
