//! `layer-mcp-gateway demo`: a Layer simulator in-process and a gateway in front of it, so a
//! newcomer can connect a real MCP client at once, with nothing but this binary.

use std::net::SocketAddr;

use layer_sim::{RunningSim, SimConfig};
use secrecy::ExposeSecret;

use crate::app::{RunningGateway, Services, start};
use crate::config::Config;

/// A running demo: the simulator and the gateway.
pub struct Demo {
    pub sim: RunningSim,
    pub gateway: RunningGateway,
    /// The PAT of the demo user.
    pub pat: String,
    /// The demo user's login and password (the simulator's login form).
    pub login: (String, String),
}

/// The demo user, one of the simulator's built-in fixtures (two workspaces).
const DEMO_USER: &str = "alice";

impl Demo {
    /// Starts the simulator on a free loopback port and the gateway on `listen`.
    pub async fn start(listen: SocketAddr) -> anyhow::Result<Self> {
        let sim_config = SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..SimConfig::default()
        };
        let sim = layer_sim::start(sim_config).await?;
        let user = sim
            .fixtures()
            .user(DEMO_USER)
            .ok_or_else(|| anyhow::anyhow!("the simulator has no demo user {DEMO_USER}"))?;
        let login = (user.login.clone(), user.password.expose_secret().to_owned());
        let pat = sim
            .fixtures()
            .active_pat(DEMO_USER)
            .ok_or_else(|| anyhow::anyhow!("the simulator has no PAT for {DEMO_USER}"))?
            .expose_secret()
            .to_owned();
        // The authorization server must know its public URL before the gateway binds, so a
        // port 0 is resolved to a free port here.
        let listen = if listen.port() == 0 {
            free_port(listen.ip())?
        } else {
            listen
        };
        let mut config = Config::for_local(listen, sim.api_url().clone());
        // upload_file may fetch the simulator's own files (it serves on loopback).
        config.upload_allow_hosts = vec![sim.local_addr().to_string()];
        let oauth = crate::auth::demo_auth_server(&sim, &config.public_url).await?;
        let services = Services::from_config(&config)?.with_oauth(oauth);
        let gateway = start(config, services).await?;
        Ok(Self {
            sim,
            gateway,
            pat,
            login,
        })
    }

    /// The lines printed at start: the URL, the PAT, the login, then client setup.
    pub fn banner(&self) -> String {
        let url = self.gateway.mcp_url();
        let pat = &self.pat;
        let (user, password) = &self.login;
        format!(
            "\
MCP URL: {url}
Demo PAT: {pat}
Demo login: {user} {password}

Layer simulator (its API): {api}
Everything below talks to the simulator only; no real Layer account is used.

Connect a client (each line is copy-paste ready):

OAuth (no token to paste): add the URL alone; the client opens a browser, you allow it on
the gateway's page, then log in at the simulated Layer with the demo login above.
  claude mcp add --transport http layer {url}         # then /mcp in Claude Code, Authenticate
  npx -y mcp-remote {url}                             # opens the browser by itself
  Claude.ai / Claude Desktop need a public https URL (see docs/clients/claude-ai.md).

Claude Code (with the PAT):
  claude mcp add --transport http layer {url} --header \"Authorization: Bearer {pat}\"
  claude mcp list

Gemini CLI:
  gemini mcp add -s user --transport http layer {url} --header \"Authorization: Bearer {pat}\"
  gemini mcp list

Clients that speak only the older HTTP+SSE transport use the same URL, e.g.:
  claude mcp add --transport sse layer-sse {url} --header \"Authorization: Bearer {pat}\"
  Gemini CLI settings.json: {{\"mcpServers\": {{\"layer\": {{\"url\": \"{url}\", \"headers\": {{\"Authorization\": \"Bearer {pat}\"}}}}}}}}

mcp-remote (for clients that only run local stdio servers, e.g. Claude Desktop):
  npx -y mcp-remote {url} --header \"Authorization:${{LAYER_AUTH}}\"   # with LAYER_AUTH=\"Bearer {pat}\"
  or in the client's JSON config:
  {{\"mcpServers\": {{\"layer\": {{\"command\": \"npx\", \"args\": [\"-y\", \"mcp-remote\", \"{url}\", \"--header\", \"Authorization:${{LAYER_AUTH}}\"], \"env\": {{\"LAYER_AUTH\": \"Bearer {pat}\"}}}}}}}}

Manus (Settings, Integrations, Custom MCP, import by JSON):
  {{\"mcpServers\": {{\"layer\": {{\"type\": \"streamableHttp\", \"url\": \"{url}\", \"headers\": {{\"Authorization\": \"Bearer {pat}\"}}}}}}}}

MCP Inspector (CLI):
  npx @modelcontextprotocol/inspector@2.12.0 --cli {url} --transport http --method tools/list --header \"Authorization: Bearer {pat}\"

Press Ctrl-C to stop.
",
            api = self.sim.api_url(),
        )
    }

    pub async fn shutdown(self) {
        self.gateway.shutdown().await;
        self.sim.shutdown().await;
    }
}

fn free_port(ip: std::net::IpAddr) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
    Ok(listener.local_addr()?)
}

/// Runs the demo until Ctrl-C.
pub async fn run(listen: &str) -> anyhow::Result<()> {
    let listen: SocketAddr = listen.parse().map_err(|e| {
        anyhow::anyhow!("invalid setting `listen`: {listen:?} is not a socket address ({e})")
    })?;
    let demo = Demo::start(listen).await?;
    println!("{}", demo.banner());
    crate::app::shutdown_signal().await;
    demo.shutdown().await;
    Ok(())
}
