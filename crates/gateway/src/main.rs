//! `layer-mcp-gateway`: `serve` runs the gateway; `demo` (feature `demo`, on by default, off
//! in the production image) runs it in front of an in-process Layer simulator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::{Config, Flags, LogFormat};

// jemalloc returns freed memory to the OS (dirty pages purged after its 10 s decay, by its
// background threads); glibc's malloc keeps a load's peak resident. See docs/performance.md.
#[cfg(all(feature = "jemalloc", target_os = "linux"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "layer-mcp-gateway",
    version,
    about = "The hosted MCP gateway for Layer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP at <public-url>/mcp, forwarding every tool call to Layer's API.
    ///
    /// Settings come from the TOML file (--config), then LAYER_MCP_* environment variables
    /// (e.g. LAYER_MCP_PAT_CACHE_TTL_SECS), then these flags, each overriding the one before.
    Serve {
        /// TOML configuration file.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// The settings that have a flag (every one has a TOML key and a variable).
        #[command(flatten)]
        flags: Flags,
    },
    /// Start a Layer simulator in-process and the gateway in front of it, then print the MCP
    /// URL, a demo PAT, a demo login and how to connect each client.
    #[cfg(feature = "demo")]
    Demo {
        /// Socket address of the gateway.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Ask the gateway on this machine for `/healthz`; exit 0 on a 200, 1 otherwise. For
    /// container health checks: the runtime image has no shell or curl.
    Healthcheck {
        /// Address of the gateway [default: LAYER_MCP_LISTEN, else 127.0.0.1:8080; a
        /// wildcard address is asked on loopback].
        #[arg(long, value_name = "ADDR")]
        addr: Option<String>,
    },
    /// Print every setting of `serve`, one per line: TOML key, environment variable, flag,
    /// `secret` or `plain`, older names (tab-separated, `-` for none). The deployment tests
    /// read it.
    #[command(hide = true)]
    Settings {
        /// Print the tables of the configuration reference in docs/operations.md instead.
        #[arg(long)]
        markdown: bool,
    },
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.with_writer(std::io::stderr).json().init(),
        LogFormat::Text => {
            // Colours only on a terminal: in a file or a collector they are raw escapes.
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            builder
                .with_ansi(ansi)
                .with_writer(gateway::logs::EscapingStderr { keep_ansi: ansi })
                .init()
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, flags } => {
            let env: BTreeMap<String, String> = std::env::vars().collect();
            let config = match Config::load(config.as_deref(), &env, &flags) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("layer-mcp-gateway: {error}");
                    return ExitCode::from(2);
                }
            };
            init_tracing(config.log_format);
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            match serve(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("layer-mcp-gateway: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Healthcheck { addr } => healthcheck(addr).await,
        Command::Settings { markdown } => {
            if markdown {
                print!("{}", gateway::settings::markdown());
            } else {
                print!("{}", gateway::settings::render());
            }
            ExitCode::SUCCESS
        }
        #[cfg(feature = "demo")]
        Command::Demo { listen } => {
            init_tracing(LogFormat::Text);
            match gateway::demo::run(&listen).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("layer-mcp-gateway demo: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn healthcheck(addr: Option<String>) -> ExitCode {
    let text = addr
        .or_else(|| std::env::var(format!("{}LISTEN", gateway::config::ENV_PREFIX)).ok())
        .unwrap_or_else(|| gateway::config::DEFAULT_LISTEN.to_owned());
    let listen: std::net::SocketAddr = match text.trim().parse() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("layer-mcp-gateway healthcheck: bad address {text:?}: {error}");
            return ExitCode::from(2);
        }
    };
    let addr = gateway::healthcheck::probe_addr(listen);
    match gateway::healthcheck::check(addr, std::time::Duration::from_secs(3)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("layer-mcp-gateway healthcheck: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut services = gateway::Services::from_config(&config)?;
    if let Some(server) = gateway::auth::start_auth_server(&config).await? {
        services = services.with_oauth(server);
    }
    let running = gateway::start(config, services).await?;
    let token = running.shutdown_token();
    tokio::spawn(async move {
        gateway::shutdown_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    running.wait().await?;
    Ok(())
}
