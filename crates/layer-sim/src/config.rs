//! Everything a simulator can be told at start; the binary's flags map onto this one to one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::fixtures::Fixtures;

/// Where the fixtures come from.
#[derive(Clone, Debug, Default)]
pub enum FixtureSource {
    /// The deterministic defaults documented in the README.
    #[default]
    Builtin,
    /// A JSON or TOML file (chosen by extension; anything but `.toml` is read as JSON).
    Path(PathBuf),
    /// Fixtures built in code (tests).
    Inline(Box<Fixtures>),
}

/// Configuration of one simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    pub fixtures: FixtureSource,
    /// Run durations are divided by this factor (must be > 0).
    pub speed: f64,
    /// Base time a run takes before `speed` is applied.
    pub run_duration: Duration,
    /// `poll_interval_seconds` handed out while a run is unfinished; `None` derives it from the
    /// effective run duration (a third of it, between 1 and 10 seconds).
    pub poll_interval_seconds: Option<u64>,
    /// Serve `/_sim/*` (faults, state, run control). Off: those paths are 404.
    pub enable_admin: bool,
    /// Origin put into every URL handed out (output files, upload URLs, the issuer). Default:
    /// `http://<bound address>`.
    pub public_url: Option<Url>,
    /// Lifetime of IdP access tokens.
    pub access_token_ttl: Duration,
    /// Absolute lifetime of IdP refresh tokens.
    pub refresh_token_ttl: Duration,
    /// Seed for every id, token and generated file the simulator mints.
    pub seed: u64,
    /// Most unfinished runs (inferences and workflow runs together) per user and workspace.
    pub max_concurrent_runs: usize,
    /// Further redirect URIs every fixture OAuth client accepts (e.g. a public gateway's callback).
    pub extra_redirect_uris: Vec<String>,
}

/// Longest run, token lifetime or poll interval accepted: ten years. Longer ones would overflow
/// clock arithmetic, so `validate` refuses them.
pub const MAX_SPAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            fixtures: FixtureSource::Builtin,
            speed: 1.0,
            run_duration: Duration::from_secs(4),
            poll_interval_seconds: None,
            enable_admin: false,
            public_url: None,
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            seed: 0x1a7e_5151,
            max_concurrent_runs: 5,
            extra_redirect_uris: Vec::new(),
        }
    }
}

impl SimConfig {
    /// A configuration for tests: port 0, admin on, runs of about 200 ms.
    pub fn for_tests() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            enable_admin: true,
            run_duration: Duration::from_millis(200),
            ..Self::default()
        }
    }

    /// How long a run takes once `speed` is applied (at most `MAX_SPAN`).
    pub fn effective_run_duration(&self) -> Duration {
        Duration::try_from_secs_f64(self.run_duration.as_secs_f64() / self.speed)
            .unwrap_or(MAX_SPAN)
            .min(MAX_SPAN)
    }

    pub fn poll_interval(&self) -> u64 {
        self.poll_interval_seconds.unwrap_or_else(|| {
            let third = self.effective_run_duration().as_secs_f64() / 3.0;
            (third.ceil() as u64).clamp(1, 10)
        })
    }

    pub(crate) fn validate(&self) -> Result<(), crate::SimError> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(crate::SimError::InvalidConfig(
                "speed must be a positive number".into(),
            ));
        }
        for (name, span) in [
            ("run duration", self.effective_run_duration()),
            ("access token TTL", self.access_token_ttl),
            ("refresh token TTL", self.refresh_token_ttl),
            (
                "poll interval",
                Duration::from_secs(self.poll_interval_seconds.unwrap_or(0)),
            ),
        ] {
            if span > MAX_SPAN {
                return Err(crate::SimError::InvalidConfig(format!(
                    "{name} is longer than ten years"
                )));
            }
        }
        if self.access_token_ttl.is_zero() {
            return Err(crate::SimError::InvalidConfig(
                "access token TTL must be at least one second".into(),
            ));
        }
        if self.max_concurrent_runs == 0 {
            return Err(crate::SimError::InvalidConfig(
                "max_concurrent_runs must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(crate::SimError::InvalidConfig(
                "public URL must be http or https".into(),
            ));
        }
        Ok(())
    }
}
