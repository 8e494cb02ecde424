//! The IdP's HTML: a login form that works without JavaScript, and an error page.

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

pub fn escape(s: &str) -> String {
    html_escape::encode_quoted_attribute(s).into_owned()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f4f6;color:#1c1c21;margin:0}\
main{max-width:24rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 2px 12px #0001}\
h1{font-size:1.4rem;margin:0 0 .25rem}p{margin:.25rem 0 1rem}label{display:block;margin:.75rem 0 .25rem;font-weight:600}\
input{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #888;border-radius:6px;font-size:1rem}\
button{margin-top:1.25rem;width:100%;padding:.7rem;border:0;border-radius:6px;background:#1c1c21;color:#fff;font-size:1rem}\
.error{color:#a4000f;font-weight:600}.hint{color:#555;font-size:.85rem}";

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>",
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        // No form-action: browsers apply it to the redirect after the login POST, which goes
        // to the OAuth client (another origin), and would block it.
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    response
}

pub fn login_page(
    status: StatusCode,
    client_name: &str,
    tx: &str,
    username: Option<&str>,
    error: Option<&str>,
    logins: &[&str],
) -> Response {
    let error_html = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in to Layer</h1><p>to continue to {client}</p>{error_html}\
         <form method=\"post\" action=\"/u/login\">\
         <input type=\"hidden\" name=\"tx\" value=\"{tx}\">\
         <label for=\"username\">Username or email</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required value=\"{user}\">\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Continue</button></form>\
         <p class=\"hint\">Layer simulator. Accounts: {accounts} (passwords are printed by layer-sim at start).</p>",
        client = escape(client_name),
        tx = escape(tx),
        user = escape(username.unwrap_or_default()),
        accounts = escape(&logins.join(", ")),
    );
    page(status, "Sign in to Layer", &body)
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Sign-in error",
        &format!(
            "<h1>Something went wrong</h1><p class=\"error\">{}</p>",
            escape(message)
        ),
    )
}
