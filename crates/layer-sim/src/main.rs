//! `layer-sim`: runs the Layer API simulator until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use layer_sim::{FixtureSource, Fixtures, SimConfig};
use secrecy::ExposeSecret;
use url::Url;

/// A faithful simulator of Layer's v1 REST API (under /api/v1) and of Layer's login (an
/// Auth0-shaped OAuth 2.0 / OpenID Connect provider on the same listener).
///
/// At start it prints where it listens and, per fixture user, a line `PAT <user>: <token>`
/// and a line `Password <user>: <password>` for the login form.
#[derive(Debug, Parser)]
#[command(name = "layer-sim", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8090", env = "LAYER_SIM_LISTEN")]
    listen: SocketAddr,

    /// Users, workspaces, PATs and OAuth clients, as JSON or TOML (by extension). Default: the
    /// built-in deterministic fixtures (see --print-fixtures).
    #[arg(long, value_name = "PATH", env = "LAYER_SIM_FIXTURES")]
    fixtures: Option<PathBuf>,

    /// Divides every run's duration: 10 makes a 4 s run take 0.4 s.
    #[arg(long, default_value_t = 1.0, value_name = "FACTOR")]
    speed: f64,

    /// Base time a run takes, in seconds, before --speed applies.
    #[arg(long, default_value_t = 4.0, value_name = "SECS")]
    run_duration: f64,

    /// poll_interval_seconds handed out while runs are unfinished. Default: a third of the
    /// effective run duration, between 1 and 10.
    #[arg(long, value_name = "SECS")]
    poll_interval: Option<u64>,

    /// Serve /_sim/* (fault injection, state dump, run control, upload read-back). Without it
    /// those paths answer 404.
    #[arg(long)]
    enable_admin: bool,

    /// Origin put into every URL the simulator hands out (outputs, upload URLs, the IdP
    /// issuer). Default: http://<bound address>.
    #[arg(long, value_name = "URL")]
    public_url: Option<Url>,

    /// Lifetime of the IdP's access tokens, in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    access_token_ttl: u64,

    /// Absolute lifetime of the IdP's refresh tokens, in seconds.
    #[arg(long, default_value_t = 30 * 24 * 3600, value_name = "SECS")]
    refresh_token_ttl: u64,

    /// Seed for generated ids, tokens, signing key and output files.
    #[arg(long, default_value_t = 0x1a7e_5151)]
    seed: u64,

    /// Most unfinished runs per user and workspace; the next execute gets 429 RATE_LIMITED.
    #[arg(long, default_value_t = 5, value_name = "N")]
    max_concurrent_runs: usize,

    /// A further redirect URI every fixture OAuth client accepts (repeatable), e.g. a
    /// gateway's public callback.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,

    /// Print the built-in fixtures as JSON (a starting point for --fixtures) and exit.
    #[arg(long)]
    print_fixtures: bool,
}

fn config(args: &Args) -> Result<SimConfig, String> {
    let run_duration = Duration::try_from_secs_f64(args.run_duration)
        .map_err(|_| "--run-duration must be a non-negative number of seconds".to_owned())?;
    Ok(SimConfig {
        listen: args.listen,
        fixtures: args
            .fixtures
            .clone()
            .map_or(FixtureSource::Builtin, FixtureSource::Path),
        speed: args.speed,
        run_duration,
        poll_interval_seconds: args.poll_interval,
        enable_admin: args.enable_admin,
        public_url: args.public_url.clone(),
        access_token_ttl: Duration::from_secs(args.access_token_ttl),
        refresh_token_ttl: Duration::from_secs(args.refresh_token_ttl),
        seed: args.seed,
        max_concurrent_runs: args.max_concurrent_runs,
        extra_redirect_uris: args.redirect_uris.clone(),
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,layer_sim=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.print_fixtures {
        match serde_json::to_string_pretty(&Fixtures::builtin()) {
            Ok(json) => {
                println!("{json}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("layer-sim: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("layer-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let sim = match layer_sim::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("layer-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = sim.base_url().as_str().trim_end_matches('/').to_owned();
    println!("Listening on {base}");
    println!("API: {}", sim.api_url());
    println!("Issuer: {}", sim.issuer());
    if sim.config().enable_admin {
        println!("Admin: {base}/_sim/state");
    }
    for user in &sim.fixtures().users {
        if let Some(pat) = user.pats.iter().find(|p| !p.revoked) {
            println!("PAT {}: {}", user.login, pat.token.expose_secret());
        }
        for pat in user.pats.iter().filter(|p| p.revoked) {
            println!("Revoked PAT {}: {}", user.login, pat.token.expose_secret());
        }
        println!("Password {}: {}", user.login, user.password.expose_secret());
    }
    for client in &sim.fixtures().oauth_clients {
        match &client.client_secret {
            Some(secret) => println!(
                "OAuth client {}: secret {}",
                client.client_id,
                secret.expose_secret()
            ),
            None => println!("OAuth client {}: public", client.client_id),
        }
    }
    wait_for_signal().await;
    sim.shutdown().await;
    ExitCode::SUCCESS
}
