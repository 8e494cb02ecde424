//! Assembles the routes and layers, binds, and runs one simulator.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;
use axum::routing::{get, post};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{FixtureSource, SimConfig};
use crate::conn::{ConnHandle, SimListener};
use crate::fixtures::Fixtures;
use crate::problem::ApiError;
use crate::state::Sim;
use crate::{SimError, admin, api, idp, problem, request_ctx, storage};

/// A simulator serving in the background of the current tokio runtime.
pub struct RunningSim {
    base_url: Url,
    api_url: Url,
    local_addr: SocketAddr,
    sim: Arc<Sim>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("base_url", &self.base_url.as_str())
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// The public origin, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The v1 API base, e.g. `http://127.0.0.1:41234/api/v1` (no trailing slash).
    pub fn api_url(&self) -> &Url {
        &self.api_url
    }

    /// The IdP issuer: the public origin with a trailing slash, as Auth0 writes it.
    pub fn issuer(&self) -> String {
        self.sim.issuer()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn fixtures(&self) -> &Fixtures {
        &self.sim.fixtures
    }

    pub fn config(&self) -> &SimConfig {
        &self.sim.config
    }

    /// Stops accepting, ends stalled responses, and waits (up to 5 s) for the server to stop.
    pub async fn shutdown(mut self) {
        self.sim.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.sim.shutdown.cancel();
    }
}

/// Counts requests per route template ("GET /api/v1/workspaces/{workspace_id}").
async fn count_requests(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    if let Some(path) = req.extensions().get::<MatchedPath>() {
        let key = format!("{} {}", req.method(), path.as_str());
        *sim.lock().counters.requests.entry(key).or_insert(0) += 1;
    }
    next.run(req).await
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn app(sim: Arc<Sim>) -> Router {
    let mut app = Router::new()
        .nest("/api/v1", api::router())
        .merge(idp::router())
        .route(
            "/storage/{bucket}/{ws}/{file}",
            post(storage::start_upload)
                .put(storage::put_upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/cdn/{file}/{name}", get(storage::serve_file));
    if sim.config.enable_admin {
        app = app.merge(admin::router());
    }
    app.route_layer(from_fn_with_state(sim.clone(), count_requests))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(sim.clone(), crate::faults::layer))
        .layer(from_fn(request_ctx::layer))
        .with_state(sim)
}

/// Starts a simulator on `config.listen` and serves until `shutdown()` (or drop).
pub async fn start(config: SimConfig) -> Result<RunningSim, SimError> {
    config.validate()?;
    let fixtures = match &config.fixtures {
        FixtureSource::Builtin => Fixtures::builtin(),
        FixtureSource::Path(path) => Fixtures::load(path)?,
        FixtureSource::Inline(f) => {
            f.validate()?;
            (**f).clone()
        }
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;
    let origin = match &config.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => {
            let host = if local_addr.ip().is_unspecified() {
                SocketAddr::new([127, 0, 0, 1].into(), local_addr.port())
            } else {
                local_addr
            };
            format!("http://{host}")
        }
    };
    let base_url = Url::parse(&format!("{origin}/"))
        .map_err(|e| SimError::InvalidConfig(format!("public URL {origin}: {e}")))?;
    let api_url = Url::parse(&format!("{origin}/api/v1"))
        .map_err(|e| SimError::InvalidConfig(format!("public URL {origin}: {e}")))?;
    let sim = Arc::new(Sim::new(config, fixtures, origin));
    let token: CancellationToken = sim.shutdown.clone();
    let service = app(sim.clone()).into_make_service_with_connect_info::<ConnHandle>();
    let task = tokio::spawn(async move {
        let served = axum::serve(SimListener::new(listener), service)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    tracing::info!(%base_url, "layer-sim listening");
    Ok(RunningSim {
        base_url,
        api_url,
        local_addr,
        sim,
        task: Some(task),
    })
}
