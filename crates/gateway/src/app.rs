//! The axum application: `/mcp` (rmcp's streamable HTTP service behind our layers, and the
//! older HTTP+SSE transport's stream), `/sse` and `/messages` (the older transport),
//! `/healthz` and `/readyz`; and [`start`], which binds and serves it until shut down.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::get;
use layer_api::{
    BearerToken, ClientConfig, LayerClient, ListWorkspacesQuery, PageLimit, RetryPolicy,
};
use legacy_sse::{Closable, ClosableConnection};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

use crate::auth::challenge::Challenge;
use auth_server::AuthServer;

use crate::auth::{
    self, MemoryCredentialCache, OAuthAuthenticator, PatAuthenticator, PatVerifier,
    RedisCredentialCache, SharedAuthenticator, VerifyError,
};
use crate::caps::Caps;
use crate::config::{Config, origin_of};
use crate::http::{self, accept, disconnect, drain, guard, protocol};
use crate::legacy::{self, directory as legacy_directory};
use crate::mcp::{LayerMcp, Shared};
use crate::redis::SharedRedis;
use crate::sessions::layer as session;
use crate::sessions::{
    EventRetention, MemorySessionRegistry, RedisEventStore, RedisSessionRegistry,
    RedisSessionStore, SessionRegistry,
};
use crate::tools::{Catalogue, FileFetcher};
use crate::upstream::Upstream;

/// The replaceable parts of a gateway: production builds them from the configuration
/// ([`Services::from_config`]); tests may swap one (e.g. the fetcher's allow-list).
#[derive(Clone)]
pub struct Services {
    pub layer: LayerClient,
    pub authenticator: SharedAuthenticator,
    pub sessions: Arc<dyn SessionRegistry>,
    pub fetcher: Arc<dyn FileFetcher>,
    /// The OAuth authorization server, when configured: its routes are mounted
    /// and its tokens are accepted beside PATs.
    pub oauth: Option<AuthServer>,
    /// The per-user caps and the limiter counting them.
    pub caps: Arc<Caps>,
    /// The shared Redis (`redis_url`), when set: sessions, their events, the session
    /// registry and the PAT cache live there, so replicas are interchangeable.
    pub redis: Option<SharedRedis>,
}

impl Services {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let layer = layer_client(config)?;
        let verifier: Arc<dyn PatVerifier> = Arc::new(LayerVerifier(layer.clone()));
        let redis = match &config.redis_url {
            Some(url) => Some(
                SharedRedis::connect_with_tls(
                    url,
                    &config.redis_tls(),
                    crate::redis::DEFAULT_TIMEOUT,
                )
                .map_err(|e| anyhow::anyhow!("setting `redis_url`: {e}"))?,
            ),
            None => None,
        };
        let credentials: Arc<dyn crate::auth::CredentialCache> = match &redis {
            Some(redis) => Arc::new(RedisCredentialCache::new(redis.clone())),
            None => Arc::new(MemoryCredentialCache::default()),
        };
        let authenticator: SharedAuthenticator = Arc::new(PatAuthenticator::new(
            verifier,
            credentials,
            config.pat_cache_ttl,
        ));
        let sessions: Arc<dyn SessionRegistry> = match &redis {
            Some(redis) => Arc::new(RedisSessionRegistry::new(
                redis.clone(),
                config.max_sessions_per_user,
                config.session_idle_timeout,
            )),
            None => Arc::new(MemorySessionRegistry::new(
                config.max_sessions_per_user,
                config.session_idle_timeout,
            )),
        };
        let fetcher = crate::fetch::fetcher_from_config(config)?;
        let caps = Arc::new(Caps::from_config(&config.caps, &config.redis_tls())?);
        Ok(Self {
            layer,
            authenticator,
            sessions,
            fetcher,
            oauth: None,
            caps,
            redis,
        })
    }

    /// Turns on OAuth: `server`'s tokens are accepted first, PATs still work.
    pub fn with_oauth(mut self, server: AuthServer) -> Self {
        self.authenticator = Arc::new(OAuthAuthenticator::new(server.clone(), self.authenticator));
        self.oauth = Some(server);
        self
    }
}

/// The pooled Layer client the configuration describes.
pub fn layer_client(config: &Config) -> anyhow::Result<LayerClient> {
    let mut client_config = ClientConfig::with_base_url(config.layer_api_url.clone());
    client_config.user_agent = concat!("layer-mcp-gateway/", env!("CARGO_PKG_VERSION")).to_owned();
    client_config.connect_timeout = config.upstream_connect_timeout;
    client_config.request_timeout = config.upstream_request_timeout;
    client_config.retry = RetryPolicy {
        max_attempts: config.upstream_max_attempts,
        ..RetryPolicy::default()
    };
    Ok(LayerClient::new(client_config)?)
}

/// Checks a PAT with the cheapest authenticated call: v1 names no caller, so a one-item
/// workspace listing stands in.
struct LayerVerifier(LayerClient);

#[async_trait::async_trait]
impl PatVerifier for LayerVerifier {
    async fn verify(&self, token: &BearerToken) -> Result<(), VerifyError> {
        let query = ListWorkspacesQuery {
            limit: PageLimit::new(1).ok(),
            cursor: None,
        };
        match self.0.with_token(token).list_workspaces(&query).await {
            Ok(_) => Ok(()),
            Err(error) => match error.status().map(|s| s.as_u16()) {
                Some(401 | 403) => Err(VerifyError::Rejected),
                _ => Err(VerifyError::Unavailable(error.to_string())),
            },
        }
    }
}

/// Layer reachability for `/readyz`, remembered for a few seconds so probes stay cheap,
/// the limiter's store, and the OAuth store (when OAuth is on).
struct Readiness {
    layer: LayerClient,
    last: Mutex<Option<(Instant, bool)>>,
    caps: Arc<Caps>,
    oauth: Option<AuthServer>,
    sessions: Arc<dyn SessionRegistry>,
    /// The old transport's shared directory, when it is Redis.
    legacy_directory: Option<Arc<legacy_sse::RedisDirectory>>,
}

impl Readiness {
    async fn layer_reachable(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < Duration::from_secs(5)
        {
            return ok;
        }
        // Any HTTP answer (a 401 for this made-up token) means Layer is there.
        let ok = match BearerToken::new("readiness-probe") {
            Ok(token) => {
                let query = ListWorkspacesQuery {
                    limit: PageLimit::new(1).ok(),
                    cursor: None,
                };
                match self.layer.with_token(&token).list_workspaces(&query).await {
                    Ok(_) => true,
                    Err(e) => e.status().is_some_and(|s| !s.is_server_error()),
                }
            }
            Err(_) => false,
        };
        *last = Some((Instant::now(), ok));
        ok
    }
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// 503 when Layer is unreachable (nothing works). The limiter's Redis being away is said in
/// the body but keeps the answer 200: every replica shares that Redis, and reads still work
/// without it (executes are refused with a clear error), so taking every replica out of the
/// load balancer would only turn a partial outage into a full one. The OAuth store
/// (`oauth store (redis|sqlite): ok | unreachable (…)`) follows the same rule: without it
/// OAuth logins, refreshes and OAuth-token calls get 503 `temporarily_unavailable`, but PAT
/// callers are still served. The old transport's Redis directory
/// (`old-transport directory (redis): ok | unreachable`) too.
async fn readyz(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    let limiter = match readiness.caps.check().await {
        Ok(()) => format!("limiter ({}): ok\n", readiness.caps.store_name()),
        Err(error) => format!(
            "limiter ({}): unreachable ({}); runs cannot be started until it is back\n",
            readiness.caps.store_name(),
            error.reason()
        ),
    };
    let oauth_store = match &readiness.oauth {
        None => String::new(),
        Some(oauth) => match oauth.check_store().await {
            Ok(()) => format!("oauth store ({}): ok\n", oauth.store_kind()),
            // The error names the kind of failure only, never the store's URL.
            Err(error) => format!(
                "oauth store ({}): unreachable ({error}); OAuth logins and tokens wait until it is back\n",
                oauth.store_kind()
            ),
        },
    };
    let sessions = session_store_line(readiness.sessions.as_ref()).await;
    let legacy = legacy_directory_line(readiness.legacy_directory.as_deref());
    if readiness.layer_reachable().await {
        (
            StatusCode::OK,
            format!("ready\nlayer: ok\n{limiter}{sessions}{legacy}{oauth_store}"),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Layer API unreachable\nlayer: unreachable\n{limiter}{sessions}{legacy}{oauth_store}"
            ),
        )
    }
}

/// `/readyz`'s line for the session store (same rule as the limiter's: said, not 503).
async fn session_store_line(sessions: &dyn SessionRegistry) -> String {
    match sessions.check().await {
        Ok(()) => format!("session store ({}): ok\n", sessions.store_name()),
        Err(error) => format!(
            "session store ({}): unreachable ({}); requests on existing sessions get 503 until it is back\n",
            sessions.store_name(),
            error.0
        ),
    }
}

/// `/readyz`'s line for the old transport's shared directory (same rule: said, not 503).
/// Its subscription is what lets POSTs from other replicas reach this one's streams; it
/// reconnects by itself, so "unreachable" is what a probe sees while Redis is away.
fn legacy_directory_line(directory: Option<&legacy_sse::RedisDirectory>) -> String {
    match directory {
        None => String::new(),
        Some(d) if d.is_subscribed() => "old-transport directory (redis): ok\n".to_owned(),
        Some(_) => "old-transport directory (redis): unreachable; old-transport POSTs for \
                    streams on other replicas get 503 until it is back\n"
            .to_owned(),
    }
}

/// When a gateway stops: `shutdown` starts the drain (no new connections, standalone SSE
/// streams closed, the idle sweeper and the old transport's drain); `hard_stop` ends what is
/// left (rmcp's sessions and streams) once calls in flight are done or the drain time is up.
#[derive(Clone, Default)]
pub struct Lifecycle {
    pub shutdown: CancellationToken,
    pub hard_stop: CancellationToken,
}

/// Builds the router.
pub fn router(config: &Config, services: Services, lifecycle: Lifecycle) -> anyhow::Result<Router> {
    let shutdown = lifecycle.shutdown.clone();
    let upstream = Upstream::new(
        services.layer.clone(),
        services.authenticator.clone(),
        services.caps.clone(),
    );
    let shared = Arc::new(Shared {
        catalogue: Catalogue::new()?,
        upstream,
        fetcher: services.fetcher.clone(),
        instructions: crate::tools::instructions::server_instructions(),
    });

    let mut session_manager = LocalSessionManager::default();
    if let Some(redis) = &services.redis {
        session_manager = session_manager.with_event_store(Arc::new(RedisEventStore::new(
            redis.clone(),
            EventRetention::for_idle_timeout(config.session_idle_timeout),
        )));
    }
    session_manager.session_config.keep_alive = Some(config.session_idle_timeout);
    let session_manager = Arc::new(session_manager);

    let mut mcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts())
        // Our guard layer checks Origin against the same allow-list before authentication.
        .disable_allowed_origins()
        .with_sse_keep_alive(Some(config.sse_keep_alive))
        .with_json_response(true)
        .with_max_request_body_bytes(config.max_request_body_bytes)
        // Not `shutdown`: calls in flight finish during the drain.
        .with_cancellation_token(lifecycle.hard_stop.child_token());
    mcp_config.legacy_session_mode = true;
    if let Some(redis) = &services.redis {
        // Another replica restores a session it never saw from its stored `initialize`.
        mcp_config.session_store = Some(Arc::new(RedisSessionStore::new(
            redis.clone(),
            config.session_idle_timeout,
        )));
    }
    let factory_shared = shared.clone();
    let mcp_service = StreamableHttpService::new(
        move || Ok(LayerMcp::new(factory_shared.clone())),
        session_manager.clone(),
        mcp_config,
    );

    let guard = Arc::new(guard::Guard::new(
        &config.allowed_hosts(),
        &config.allowed_origins,
    ));
    let challenge = match &services.oauth {
        Some(server) => Challenge::new().with_oauth(
            server.resource_metadata_url(),
            auth_server::SCOPE.to_owned(),
        ),
        None => Challenge::new(),
    };
    let auth_state = auth::layer::AuthState {
        authenticator: services.authenticator.clone(),
        challenge: Arc::new(challenge),
    };
    let session_state = session::SessionState {
        registry: services.sessions.clone(),
        closer: session_manager,
    };
    session::spawn_idle_sweeper(
        session_state.clone(),
        Duration::from_secs(30).min(config.session_idle_timeout),
        shutdown.clone(),
    );
    let protocol_state = protocol::ProtocolState {
        max_body_bytes: config.max_request_body_bytes,
    };

    let directory = legacy_directory::from_config(config, services.authenticator.clone())?;
    let old_sse = legacy::build(
        config,
        shared.clone(),
        shutdown.child_token(),
        directory.sessions.clone(),
    )?;
    let streams = old_sse.clone();
    // Streams get the drain time, then a few seconds to flush and close.
    directory.drain_on(
        shutdown.clone(),
        move || streams.open_streams(),
        config.shutdown_drain + Duration::from_secs(10),
    );
    // The older transport's own routes, behind the same guard and authentication.
    let old_routes = old_sse
        .router(legacy::SSE_PATH, legacy::MESSAGES_PATH)
        .layer(
            ServiceBuilder::new()
                .layer(guard.cors())
                .layer(from_fn_with_state(guard.clone(), guard::check))
                .layer(from_fn_with_state(
                    auth_state.clone(),
                    auth::layer::require_caller,
                )),
        );

    let mcp = ServiceBuilder::new()
        .layer(guard.cors())
        .layer(from_fn_with_state(guard, guard::check))
        .layer(from_fn_with_state(auth_state, auth::layer::require_caller))
        .layer(from_fn_with_state(old_sse, legacy::dispatch))
        .layer(from_fn_with_state(session_state, session::bind_sessions))
        .layer(from_fn_with_state(
            shutdown.clone(),
            drain::end_streams_on_shutdown,
        ))
        .layer(from_fn_with_state(protocol_state, protocol::normalise))
        .layer(from_fn(accept::negotiate))
        .layer(from_fn(disconnect::watch))
        .service(mcp_service);

    let readiness = Arc::new(Readiness {
        layer: services.layer.clone(),
        last: Mutex::new(None),
        caps: services.caps.clone(),
        oauth: services.oauth.clone(),
        sessions: services.sessions.clone(),
        legacy_directory: directory.shared.clone(),
    });
    let mut app = Router::new()
        .route_service("/mcp", mcp)
        .merge(old_routes)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness));
    if let Some(server) = &services.oauth {
        // Discovery documents, /authorize, /token, /register, /revoke and the login pages.
        app = app.merge(server.router());
    }
    Ok(app.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(
                http::trace::REQUEST_ID,
                http::trace::MakeUuid,
            ))
            .layer(http::trace::layer())
            .layer(PropagateRequestIdLayer::new(http::trace::REQUEST_ID))
            .layer(from_fn(http::keepalive::drain_unread)),
    ))
}

/// A gateway serving on a socket.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub config: Config,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    /// `<public_url>/mcp`.
    pub fn mcp_url(&self) -> String {
        self.config.mcp_url()
    }

    /// Stops accepting, ends streams, and waits for the server task.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Resolves when the server stops on its own (an I/O error) or is shut down.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// A token that shuts this gateway down when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Binds `config.listen` and serves. Port 0 picks a free port; a public URL with port 0 is
/// then rewritten to the bound port (tests and the demo use this).
pub async fn start(mut config: Config, services: Services) -> anyhow::Result<RunningGateway> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on {} (setting `listen`): {e}", config.listen)
        })?;
    let addr = listener.local_addr()?;
    if config.public_url.port() == Some(0) {
        let derived = config.allowed_origins == vec![origin_of(&config.public_url)];
        let _ = config.public_url.set_port(Some(addr.port()));
        if derived {
            config.allowed_origins = vec![origin_of(&config.public_url)];
        }
    }
    config.listen = addr;
    config.validate()?;
    let lifecycle = Lifecycle::default();
    let shutdown = lifecycle.shutdown.clone();
    let hard_stop = lifecycle.hard_stop.clone();
    let drain_time = config.shutdown_drain;
    let app = router(&config, services, lifecycle)?;
    let stop = shutdown.clone();
    // Small SSE frames must not wait for Nagle's algorithm (it costs ~40 ms per call).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    // Connect info: the authorization server rate-limits registrations per address, and the
    // old transport closes the connection of a stream whose client stopped reading.
    let listener = Closable::new(listener);
    let app = app.layer(axum::middleware::from_fn(
        legacy_sse::split_connect_info::<SocketAddr>,
    ));
    let task = tokio::spawn(async move {
        // On shutdown axum drops the listener (new connections are refused) and waits for
        // the open ones: requests in flight finish, standalone SSE streams end at once
        // (`http/drain.rs`), idle keep-alive connections close. The drain time bounds it all.
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<ClosableConnection<SocketAddr>>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .into_future();
        let deadline = async {
            stop.cancelled().await;
            tokio::time::sleep(drain_time).await;
        };
        let result = tokio::select! {
            result = serve => {
                tracing::info!("drained: every connection finished");
                result
            }
            () = deadline => {
                tracing::warn!(drain_secs = drain_time.as_secs(), "drain time over: closing what is left");
                Ok(())
            }
        };
        hard_stop.cancel();
        result
    });
    tracing::info!(%addr, mcp_url = %config.mcp_url(), upstream = %config.layer_api_url, limiter = ?config.caps.store, "gateway listening");
    Ok(RunningGateway {
        addr,
        config,
        shutdown,
        task,
    })
}

/// Resolves on SIGTERM (orchestrators) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
