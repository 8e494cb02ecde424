//! OAuth end to end: a simulator (in-process, its identity provider plays Layer's login) and
//! a gateway process with OAuth on, and a scripted browser that walks the consent page and the
//! simulator's login form like a person with a form-only browser would.

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

/// The `serve` flags that turn OAuth on with `sim`'s identity provider as Layer's login and
/// [`TEST_ENCRYPTION_KEY`].
pub fn oauth_args(sim: &RunningSim) -> Vec<String> {
    let client = sim
        .fixtures()
        .oauth_client("layer-mcp-gateway")
        .expect("the simulator's gateway client");
    let secret = client.client_secret.as_ref().expect("secret");
    vec![
        "--oauth-idp-issuer".into(),
        sim.issuer(),
        "--oauth-idp-client-id".into(),
        client.client_id.clone(),
        "--oauth-idp-client-secret".into(),
        secret.expose_secret().to_owned(),
        "--oauth-idp-audience".into(),
        sim.fixtures().api_audience.clone(),
        "--oauth-encryption-key".into(),
        TEST_ENCRYPTION_KEY.into(),
    ]
}

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
        let mut all_args = oauth_args(&sim);
        all_args.extend([
            "--store".into(),
            format!("sqlite://{}", data_dir.join("auth.sqlite3").display()),
        ]);
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
        test_support::sim::SimAdmin::new(self.sim.base_url().as_str())
            .state()
            .await
    }

    /// A browser that logs in as the test user.
    pub fn browser(&self) -> Browser {
        Browser::new(&self.login, &self.password)
    }

    /// Redeems an authorization code at the gateway's token endpoint: the tokens.
    pub async fn redeem(
        &self,
        client_id: &str,
        code: &str,
        redirect: &str,
        verifier: &str,
    ) -> serde_json::Value {
        redeem_code(
            &self.gateway.url("/token"),
            client_id,
            code,
            redirect,
            verifier,
        )
        .await
    }

    /// A new browser's walk from the authorization URL `url` through the gateway's consent
    /// page and the simulator's login, to the redirect back to the client.
    pub async fn authorize(&self, url: &str) -> Walk {
        let sim_origin = self
            .sim
            .base_url()
            .as_str()
            .trim_end_matches('/')
            .to_owned();
        self.browser()
            .authorize(url, &self.gateway.public_url, &sim_origin)
            .await
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
    pages: test_support::oauth::Browser,
    login: String,
    password: String,
}

impl Browser {
    pub fn new(login: &str, password: &str) -> Browser {
        Browser {
            pages: test_support::oauth::Browser::new(),
            login: login.to_owned(),
            password: password.to_owned(),
        }
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
        let consent = self.pages.get(authorization_url).await;
        assert_eq!(consent.status, 200, "consent page: {}", consent.body);
        let pending = consent.input("pending").expect("pending field");
        let csrf = consent.input("csrf_token").expect("csrf field");
        walk.consent_page = consent.body;
        let action = format!("{gateway_origin}/authorize/consent");
        let approved = self
            .pages
            .post_form(
                &action,
                &[
                    ("pending", &pending),
                    ("csrf_token", &csrf),
                    ("decision", "approve"),
                ],
            )
            .await;
        assert_eq!(approved.status, 303, "consent POST: {}", approved.body);
        let mut next = approved.location().expect("redirect to Layer's login");
        assert!(
            next.starts_with(sim_origin),
            "goes to the simulated Layer login: {next}"
        );
        let login_page = self.pages.get(&next).await;
        assert_eq!(login_page.status, 200, "login page: {}", login_page.body);
        let tx = login_page.input("tx").expect("tx field");
        walk.login_page = login_page.body;
        let (login, password) = (self.login.clone(), self.password.clone());
        let logged_in = self
            .pages
            .post_form(
                &format!("{sim_origin}/u/login"),
                &[("tx", &tx), ("username", &login), ("password", &password)],
            )
            .await;
        next = logged_in
            .location()
            .unwrap_or_else(|| panic!("login did not redirect: {}", logged_in.body));
        // Back at the gateway's callback, which redirects to the client.
        for _ in 0..5 {
            if !next.starts_with(gateway_origin) && !next.starts_with(sim_origin) {
                walk.redirect = Some(Url::parse(&next).expect("redirect URL"));
                return walk;
            }
            let page = self.pages.get(&next).await;
            next = page.location().unwrap_or_else(|| {
                panic!("no redirect from {next} ({}): {}", page.status, page.body)
            });
        }
        panic!("too many redirects");
    }
}

pub use test_support::oauth::{authorization_url, pkce, post_form, query, redeem_code};
