//! The server: shared state, the route table with its middleware, the docs, and binding
//! and running on a socket.

use crate::auth::Sessions;
use crate::config::ServerConfig;
use crate::error::status_response;
use crate::middleware::{Observe, RateLimit, ShapeErrors, Timeout};
use crate::oauth::{PendingLogins, RefreshLocks};
use crate::releases::ReleaseCheck;
use crate::{api, metrics};
use anyhow::Context;
use echostats::analytics::ReadCache;
use echostats::spotify::SpotifyClient;
use echostats::store::Store;
use poem::http::{header, Method, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::middleware::{CatchPanic, Compression, Cors, SetHeader};
use poem::{get, Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Overviews (and history totals) kept at most: a few per active user and period.
const READ_CACHE_ENTRIES: u64 = 10_000;

/// What every handler can reach: the store, the configuration and the session keys.
pub struct AppState {
    /// The store, picked from a URL at start.
    pub store: Arc<dyn Store>,
    /// The configuration.
    pub config: ServerConfig,
    /// Session tokens.
    pub sessions: Sessions,
    /// The Spotify client, when Spotify is configured.
    pub spotify: Option<Arc<SpotifyClient>>,
    /// Spotify logins in progress (OAuth state and PKCE verifier).
    pub logins: PendingLogins,
    /// Computed overviews and history totals; every job that writes a user's plays
    /// invalidates theirs.
    pub reads: ReadCache,
    /// One token refresh per user at a time.
    pub refresh_locks: RefreshLocks,
    /// The latest-release check of `/api/health/update`.
    pub releases: ReleaseCheck,
    /// Redis, when configured (`/api/health/ready` pings it).
    pub redis: Option<redis::Client>,
}

impl AppState {
    /// State over `store`.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        AppState {
            sessions: Sessions::new(&config.jwt_secret, config.session_ttl),
            spotify: spotify_client(&config, &store),
            logins: PendingLogins::default(),
            reads: ReadCache::new(READ_CACHE_ENTRIES, config.overview_max_age),
            refresh_locks: RefreshLocks::default(),
            releases: ReleaseCheck::new(config.releases_url.clone()),
            // Checked by `ServerConfig::validate`; a URL that still fails shows as not ready.
            redis: config.redis_url.as_deref().and_then(|u| redis::Client::open(u).ok()),
            store,
            config,
        }
    }
}

/// The Spotify client of `config`, if it has a Spotify app (checked by `Server::bind`).
fn spotify_client(config: &ServerConfig, store: &Arc<dyn Store>) -> Option<Arc<SpotifyClient>> {
    let spotify = config.spotify.clone()?;
    match SpotifyClient::new(spotify, store.clone()) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the Spotify client; Spotify routes answer 501");
            None
        }
    }
}

fn api_service() -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    OpenApiService::new(api::all(), "EchoStats API", env!("CARGO_PKG_VERSION")).description(
        "Self-hosted Spotify listening statistics: the EchoStats REST API. Data routes need a \
         session: the `session` cookie or `Authorization: Bearer <token>`.",
    )
}

/// The OpenAPI document as poem-openapi generates it (see [`crate::spec`]).
pub(crate) fn generated_spec() -> String {
    api_service().spec()
}

/// The OpenAPI document of the API (what `/api/openapi.json` serves).
pub fn openapi_spec() -> String {
    crate::spec::served().to_string()
}

fn served_spec_value() -> serde_json::Value {
    serde_json::from_str(crate::spec::served()).expect("served spec is JSON")
}

/// The whole application: routes, docs, metrics and middleware.
pub(crate) fn app(state: Arc<AppState>) -> impl Endpoint + 'static {
    let config = state.config.clone();
    let api = api_service();
    let routes = Route::new()
        .nest("/api/docs", api.swagger_ui())
        .nest("/api/redoc", api.redoc())
        .at("/api/openapi.json", get(poem::endpoint::make_sync(|_| poem::web::Json(served_spec_value()))))
        .at("/metrics", get(metrics::render))
        .nest("/", api)
        .data(state)
        .with(CatchPanic::new().with_handler(|_| status_response(StatusCode::INTERNAL_SERVER_ERROR)))
        .with(ShapeErrors)
        .with(Timeout { normal: config.request_timeout, slow: config.slow_request_timeout })
        .with_if(config.rate_limit.is_some(), RateLimit::new(config.rate_limit.unwrap_or_default(), config.trust_proxy))
        .with(Compression::new());
    let cors = Cors::new()
        .allow_origins(config.cors_origins.iter().map(String::as_str))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION, header::HeaderName::from_static("x-request-id")])
        .expose_header(header::HeaderName::from_static("x-request-id"));
    routes
        .with_if(!config.cors_origins.is_empty(), cors)
        .with(
            SetHeader::new()
                .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .overriding(header::X_FRAME_OPTIONS, "DENY")
                .overriding(header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
        )
        .with(Observe)
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Deletes old jobs and API logs, and syncs from Spotify, while the server runs.
    _background: Vec<crate::jobs::BackgroundTask>,
}

impl Server {
    /// Checks `config`, binds `config.bind` and starts serving `store` in the background.
    pub async fn bind(config: ServerConfig, store: Arc<dyn Store>) -> anyhow::Result<Server> {
        config.validate().map_err(|e| anyhow::anyhow!(e))?;
        // Install the metrics recorder before the first request.
        metrics::handle();
        let acceptor = TcpListener::bind(config.bind.clone())
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .context("the listener has no socket address")?;
        crate::jobs::fail_interrupted(&*store).await;
        let mut background = vec![crate::jobs::spawn_retention_sweep(store.clone(), config.retention)];
        let state = Arc::new(AppState::new(store, config));
        if let (Some(_), Some(every)) = (&state.spotify, state.config.sync_interval) {
            background.push(crate::jobs::spawn_sync_scheduler(state.clone(), every));
        }
        let app = app(state).into_endpoint();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            app,
            async move {
                let _ = stopped.await;
            },
            Some(Duration::from_secs(10)),
        ));
        Ok(Server { addr, stop, task, _background: background })
    }

    /// The address it listens on (with the port picked when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the server fails.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the server task failed")?.context("the server failed")
    }

    /// Serves until `signal` completes, then stops gracefully (open requests get 10 s).
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Server { stop, mut task, .. } = self;
        tokio::select! {
            r = &mut task => return r.context("the server task failed")?.context("the server failed"),
            () = signal => {}
        }
        let _ = stop.send(());
        task.await.context("the server task failed")?.context("the server failed")
    }

    /// Stops gracefully.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.run_until(async {}).await
    }
}
