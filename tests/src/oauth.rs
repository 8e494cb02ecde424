//! OAuth end to end: a simulator (in-process, its identity provider plays Layer's login) and
//! a gateway process with OAuth on, and a scripted browser that walks the consent page and the
//! simulator's login form like a person with a form-only browser would.

use std::collections::HashMap;
use std::path::PathBuf;

use layer_sim::{RunningSim, SimConfig};
use secrecy::ExposeSecret;
use url::Url;

use crate::gateway::{GatewayOptions, GatewayProcess};

/// A fixed AES-256-GCM key for the tests' gateways (hex).
pub const TEST_ENCRYPTION_KEY: &str =
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The simulator user the tests log in as.
pub const USER: &str = "alice";

/// A simulator and a gateway with OAuth login at the simulator.
pub struct OAuthStack {
    pub sim: RunningSim,
    pub gateway: GatewayProcess,
    pub data_dir: PathBuf,
    pub login: String,
    pub password: String,
}

impl OAuthStack {
    /// Starts both. `sim` adjusts the simulator; `args` are extra `serve` flags.
    pub async fn start(sim: impl FnOnce(&mut SimConfig), args: &[&str]) -> OAuthStack {
        let mut config = SimConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            enable_admin: true,
            ..SimConfig::default()
        };
        sim(&mut config);
        let sim = layer_sim::start(config).await.expect("start the simulator");
        let data_dir = std::env::temp_dir().join(format!(
            "layer-mcp-oauth-{}-{}",
            std::process::id(),
            crate::free_port()
        ));
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let client = sim
            .fixtures()
            .oauth_client("layer-mcp-gateway")
            .expect("the simulator's gateway client")
            .clone();
        let mut all_args: Vec<String> = vec![
            "--oauth-idp-issuer".into(),
            sim.issuer(),
            "--oauth-idp-client-id".into(),
            client.client_id.clone(),
            "--oauth-idp-client-secret".into(),
            client
                .client_secret
                .as_ref()
                .expect("secret")
                .expose_secret()
                .to_owned(),
            "--oauth-idp-audience".into(),
            sim.fixtures().api_audience.clone(),
            "--store".into(),
            format!("sqlite://{}", data_dir.join("auth.sqlite3").display()),
            "--oauth-encryption-key".into(),
            TEST_ENCRYPTION_KEY.into(),
        ];
        all_args.extend(args.iter().map(|a| a.to_string()));
        let gateway = GatewayProcess::start(GatewayOptions {
            layer_api_url: sim.api_url().to_string(),
            args: all_args,
            ..GatewayOptions::default()
        })
        .await;
        let user = sim.fixtures().user(USER).expect("alice");
        let (login, password) = (user.login.clone(), user.password.expose_secret().to_owned());
        OAuthStack {
            sim,
            gateway,
            data_dir,
            login,
            password,
        }
    }

    /// The simulator's admin state (`/_sim/state`).
    pub async fn sim_state(&self) -> serde_json::Value {
        reqwest::get(format!("{}_sim/state", self.sim.base_url()))
            .await
            .expect("sim state")
            .json()
            .await
            .expect("sim state json")
    }

    /// A browser that logs in as the test user.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.login, &self.password)
    }
}

impl Drop for OAuthStack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// What the browser saw on the way.
#[derive(Debug, Default)]
pub struct Walk {
    pub consent_page: String,
    pub login_page: String,
    /// Where the browser was finally sent: the client's redirect URI with `code`, `state`, `iss`.
    pub redirect: Option<Url>,
}

/// A form-only browser: follows redirects one by one, keeps cookies, submits the consent page
/// and the simulator's login form. It never follows a redirect to the client (the caller
/// decides whether to deliver it).
pub struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
    login: String,
    password: String,
}

fn hidden_input(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].replace("&amp;", "&"))
}

impl Browser {
    pub fn new(login: &str, password: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: HashMap::new(),
            login: login.to_owned(),
            password: password.to_owned(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
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
            .expect("request");
        for value in response.headers().get_all("set-cookie") {
            if let Some((k, v)) = value
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .and_then(|kv| kv.split_once('='))
            {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, location, response.text().await.unwrap_or_default())
    }

    async fn form(&mut self, url: &str, fields: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Opens `authorization_url`, approves on the consent page, logs in at the simulator, and
    /// stops at the redirect to anything outside `stop_at_origins`' complement, i.e. at the
    /// client's redirect URI. Panics with what it saw if a step is not what a person would see.
    pub async fn authorize(
        &mut self,
        authorization_url: &str,
        gateway_origin: &str,
        sim_origin: &str,
    ) -> Walk {
        let mut walk = Walk::default();
        let (status, _, consent) = self.send(self.http.get(authorization_url)).await;
        assert_eq!(status, 200, "consent page: {consent}");
        let pending = hidden_input(&consent, "pending").expect("pending field");
        let csrf = hidden_input(&consent, "csrf_token").expect("csrf field");
        walk.consent_page = consent;
        let action = format!("{gateway_origin}/authorize/consent");
        let (status, location, body) = self
            .form(
                &action,
                &[
                    ("pending", &pending),
                    ("csrf_token", &csrf),
                    ("decision", "approve"),
                ],
            )
            .await;
        assert_eq!(status, 303, "consent POST: {body}");
        let mut next = location.expect("redirect to Layer's login");
        assert!(
            next.starts_with(sim_origin),
            "goes to the simulated Layer login: {next}"
        );
        let (status, _, login_page) = self.send(self.http.get(&next)).await;
        assert_eq!(status, 200, "login page: {login_page}");
        let tx = hidden_input(&login_page, "tx").expect("tx field");
        walk.login_page = login_page;
        let (login, password) = (self.login.clone(), self.password.clone());
        let (_, location, body) = self
            .form(
                &format!("{sim_origin}/u/login"),
                &[("tx", &tx), ("username", &login), ("password", &password)],
            )
            .await;
        next = location.unwrap_or_else(|| panic!("login did not redirect: {body}"));
        // Back at the gateway's callback, which redirects to the client.
        for _ in 0..5 {
            if !next.starts_with(gateway_origin) && !next.starts_with(sim_origin) {
                walk.redirect = Some(Url::parse(&next).expect("redirect URL"));
                return walk;
            }
            let (status, location, body) = self.send(self.http.get(&next)).await;
            next = location.unwrap_or_else(|| panic!("no redirect from {next} ({status}): {body}"));
        }
        panic!("too many redirects");
    }
}

/// The query parameters of a URL.
pub fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}
