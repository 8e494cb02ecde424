//! The pages a person sees: the consent page (before the Layer login) and error pages.
//! Plain HTML with inline CSS, no JavaScript, strict security headers.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

const STYLE: &str = r#"
:root { color-scheme: light dark; --fg:#1b1b1f; --muted:#5b5b66; --bg:#f6f6f8; --card:#fff;
  --accent:#5b3df5; --accent-fg:#fff; --border:#dcdce3; --warn:#8a5a00; }
@media (prefers-color-scheme: dark) { :root { --fg:#ececf1; --muted:#a4a4b0; --bg:#131317;
  --card:#1d1d23; --border:#34343d; --accent:#8c7bff; --accent-fg:#111; --warn:#f2c265; } }
* { box-sizing: border-box; }
body { margin:0; font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
main { max-width: 34rem; margin: 3rem auto; padding: 2rem; background: var(--card);
  border: 1px solid var(--border); border-radius: 12px; }
.brand { font-weight: 700; letter-spacing: .02em; color: var(--accent); margin: 0 0 1rem; }
h1 { font-size: 1.35rem; margin: 0 0 .75rem; line-height: 1.3; }
p { margin: .5rem 0; }
.muted { color: var(--muted); font-size: .93rem; }
.client { font-weight: 600; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em;
  overflow-wrap: anywhere; }
ul { padding-left: 1.25rem; margin: .5rem 0 1rem; }
li { margin: .35rem 0; }
.note { border-left: 3px solid var(--warn); padding: .25rem .75rem; color: var(--fg); }
.actions { display: flex; gap: .75rem; flex-wrap: wrap; margin-top: 1.5rem; }
button { font: inherit; padding: .65rem 1.2rem; border-radius: 8px; cursor: pointer;
  border: 1px solid var(--border); background: transparent; color: var(--fg); }
button.primary { background: var(--accent); color: var(--accent-fg); border-color: var(--accent);
  font-weight: 600; }
button:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>\n",
        title = escape(title)
    )
}

/// What the consent page shows.
#[derive(Debug)]
pub struct ConsentView<'a> {
    /// The name the client gave itself, if any.
    pub client_name: Option<&'a str>,
    pub client_id: &'a str,
    /// The client id is a metadata-document URL (its host is verified by the fetch).
    pub client_id_is_url: bool,
    /// Where the browser returns after the login: host (or scheme for app schemes).
    pub redirect_host: &'a str,
    pub pending_id: &'a str,
    pub csrf_token: &'a str,
    pub action: &'a str,
}

/// What the one scope lets a client do, as shown to the person granting it.
pub const SCOPE_DESCRIPTION: [&str; 4] = [
    "See your Layer workspaces, their Creative Unit balances, and the models and workflows in them",
    "Start image, video, 3D and audio generations and workflow runs, which spend your \
     workspaces' Creative Units",
    "Upload files to your workspaces and read the results of your runs",
    "Stay connected until you disconnect it, without asking you to log in again",
];

pub fn consent_page(v: &ConsentView<'_>) -> String {
    let name = v.client_name.unwrap_or("An application");
    let who = if v.client_id_is_url {
        format!(
            "<p class=\"muted\">Identified by its published metadata at <code>{}</code>.</p>",
            escape(v.client_id)
        )
    } else {
        "<p class=\"muted note\">The name above is how the application describes itself; \
         Layer has not verified it. Continue only if you just asked this application to \
         connect to Layer.</p>"
            .to_owned()
    };
    let items: String = SCOPE_DESCRIPTION
        .iter()
        .map(|d| format!("<li>{}</li>", escape(d)))
        .collect();
    let body = format!(
        "<p class=\"brand\">Layer</p>\
         <h1><span class=\"client\">{name}</span> wants to use your Layer account</h1>\
         {who}\
         <p>After you log in at Layer you will be sent back to <code>{host}</code>.</p>\
         <h2 class=\"muted\" style=\"font-size:1rem;margin-top:1.25rem\" id=\"perm\">If you allow it, it can:</h2>\
         <ul aria-labelledby=\"perm\">{items}</ul>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"pending\" value=\"{pending}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <div class=\"actions\">\
         <button class=\"primary\" type=\"submit\" name=\"decision\" value=\"approve\">Allow and log in to Layer</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Cancel</button>\
         </div></form>\
         <p class=\"muted\" style=\"margin-top:1.5rem\">You can disconnect it at any time in \
         the application; tokens it holds then stop working at once.</p>",
        name = escape(name),
        host = escape(v.redirect_host),
        action = escape(v.action),
        pending = escape(v.pending_id),
        csrf = escape(v.csrf_token),
    );
    page(&format!("Allow {name} to use Layer?"), &body)
}

/// An error page for a request that cannot be sent back to the client (unknown client, a
/// redirect URI that is not registered, an expired consent…).
pub fn error_page(title: &str, message: &str, code: &str) -> String {
    let body = format!(
        "<p class=\"brand\">Layer</p><h1>{}</h1><p>{}</p>\
         <p class=\"muted\">Error code: <code>{}</code>. Start again from the application \
         you were connecting.</p>",
        escape(title),
        escape(message),
        escape(code)
    );
    page(title, &body)
}

/// An HTML response with the headers every page here carries: no framing (clickjacking),
/// no caching, no referrer, no scripts.
pub fn html(status: StatusCode, body: String, set_cookie: Option<String>) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(cookie) = set_cookie
        && let Ok(v) = HeaderValue::from_str(&cookie)
    {
        h.append(header::SET_COOKIE, v);
    }
    response
}

pub fn error_response(status: StatusCode, title: &str, message: &str, code: &str) -> Response {
    html(status, error_page(title, message, code), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_escapes_what_the_client_chose() {
        let page = consent_page(&ConsentView {
            client_name: Some("<script>alert(1)</script>"),
            client_id: "lmc_x",
            client_id_is_url: false,
            redirect_host: "claude.ai",
            pending_id: "p\"",
            csrf_token: "c",
            action: "/authorize/consent",
        });
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("value=\"p&quot;\""));
        assert!(page.contains("Layer"));
        assert!(page.contains("claude.ai"));
    }
}
