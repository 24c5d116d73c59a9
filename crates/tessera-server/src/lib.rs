//! Tessera's HTTP layer. One axum router serves both dialects over one [`Engine`]: [`partner`]
//! (JSON, `/v2/...`, seed 000), [`standard`] (form-encoded, `/oauth/...`, RFC 6749, seed 002; the
//! two wire contracts are stated in `docs/wire-contracts.md`), the authorization pages in
//! [`pages`], and the operational endpoints in [`operational`] (health, readiness, JWKS). Each dialect
//! parses its own wire format into the engine's `GrantRequest` and maps a [`error::RequestError`]
//! (the engine's error or an HTTP-only one) to its wire format in exactly one function. [`app`]
//! holds what every handler shares; [`wire`] the parsing helpers both dialects use.
//!
//! This file builds the router and [`start`]s a server: it binds a listener (port 0 in tests),
//! builds the engine, starts the change-feed sync and serves until [`RunningServer::shutdown`],
//! which lets in-flight requests finish.

pub mod admin;
pub mod app;
pub mod body;
pub mod conn;
pub mod error;
pub mod forwarded;
mod framing;
pub mod metrics;
pub mod openapi;
pub mod operational;
pub mod pages;
pub mod partner;
pub mod standard;
pub mod tls;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tessera_core::engine::StartError;
use tessera_core::master::MasterKey;
use tessera_core::store::Store;
use tessera_core::{Engine, EngineConfig, unix_now};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;

pub use app::AppState;
use app::MAX_BODY_BYTES;

pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `iss` of tokens; `http://<bound address>` when absent.
    pub issuer: Option<String>,
    /// Lifetimes, limits and algorithm; its `issuer` and `audience` are set by [`start`].
    pub engine: EngineConfig,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<tls::TlsFiles>,
    /// Timeouts and the connection cap.
    pub limits: conn::ConnectionLimits,
    /// Peers whose `X-Forwarded-For` (or `Forwarded`) names the client; none by default.
    pub trusted_proxies: forwarded::TrustedProxies,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: ServedAt,
    /// Where the admin API (`/admin/v1`) is served, if anywhere.
    pub admin: ServedAt,
}

/// Connections the admin and metrics listeners each take at once: enough for operators and
/// scrapers, and their own, so a flood of the main listener leaves them reachable.
const SIDE_LISTENER_CONNECTIONS: usize = 256;

/// Where `/metrics` (or the admin API) is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServedAt {
    /// Nowhere, and nothing is recorded.
    Off,
    /// On the main listener, but only to connections from a loopback address that no proxy
    /// forwarded (no `X-Forwarded-For` or `Forwarded` header); to everyone else it does not
    /// exist (404). The safe default: an operator on the machine can reach it, the internet
    /// cannot.
    #[default]
    Local,
    /// On the main listener, to everyone (the admin API still needs its tokens).
    Main,
    /// On a listener of its own (say, on an address only the monitoring network reaches), and
    /// not on the main one.
    Listen(SocketAddr),
}

/// The whole router, for a given state; `/metrics` and the admin API on it as `metrics` and
/// `admin` say ([`ServedAt::Main`] to everyone, [`ServedAt::Local`] to local connections).
pub fn router(state: AppState, metrics: ServedAt, admin: ServedAt) -> Router {
    routes(state, metrics, admin, false)
}

fn routes(state: AppState, metrics: ServedAt, admin: ServedAt, https: bool) -> Router {
    let (mut routes, mut local) = (Router::new(), Router::new());
    let metrics_route =
        || Router::new().route("/metrics", axum::routing::get(crate::metrics::render));
    match metrics {
        ServedAt::Main => routes = routes.merge(metrics_route()),
        ServedAt::Local => local = local.merge(metrics_route()),
        ServedAt::Off | ServedAt::Listen(_) => {}
    }
    match admin {
        ServedAt::Main => routes = routes.merge(admin::routes(&state)),
        ServedAt::Local => local = local.merge(admin::routes(&state)),
        ServedAt::Off | ServedAt::Listen(_) => {}
    }
    if metrics == ServedAt::Local || admin == ServedAt::Local {
        // `layer`, not `route_layer`: the admin API's own not-found answer would otherwise tell
        // everyone that it is mounted here.
        routes = routes.merge(local.layer(middleware::from_fn(local_only)));
    }
    let routes = routes
        .merge(partner::routes())
        .merge(standard::routes())
        .merge(pages::routes())
        .merge(operational::routes())
        .fallback(not_found);
    layered(routes, state, https)
}

/// The layers every listener's routes get, written once: the body limit, the request id and
/// access line ([`access_log`]), `nosniff`, and over HTTPS (`https`) HSTS (RFC 6797), which
/// tells browsers to stay on HTTPS.
fn layered(routes: Router<AppState>, state: AppState, https: bool) -> Router {
    let routes = routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(access_log))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    let routes = if https {
        routes.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
    } else {
        routes
    };
    routes.with_state(state)
}

/// For [`ServedAt::Local`]: a request passes when its client is a loopback address and no
/// proxy forwarded it. (From a trusted proxy the client is the forwarded one, but such a request
/// carries the header and is refused; without the header the client is the TCP peer.) A proxy
/// on the same machine that adds neither header would make these routes public: give them
/// their own listener (`--metrics-listen`, `--admin-listen`) there.
async fn local_only(request: Request, next: Next) -> Response {
    let loopback = request
        .extensions()
        .get::<axum::extract::ConnectInfo<app::Peer>>()
        .is_some_and(|c| c.0.0.ip().to_canonical().is_loopback());
    let forwarded = request.headers().contains_key("x-forwarded-for")
        || request.headers().contains_key(header::FORWARDED);
    if loopback && !forwarded {
        next.run(request).await
    } else {
        not_found(request).await
    }
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/v2/") {
        return partner::error::not_found(unix_now());
    }
    standard::error::not_found()
}

/// The request id header: taken from the request when a proxy set a well-formed one, made
/// otherwise, and always returned.
pub const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// A request id from upstream is kept when it is 1 to 128 characters of `[A-Za-z0-9._:-]`
/// (nothing that could forge a log line or need escaping); otherwise a UUIDv7 (time-ordered,
/// its random part from the process's userspace generator, not a system call) is made.
fn request_id(request: &Request) -> HeaderValue {
    if let Some(given) = request.headers().get(&REQUEST_ID) {
        let bytes = given.as_bytes();
        if (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(b))
        {
            return given.clone();
        }
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let random = tessera_core::secret::random_bytes::<10>();
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    HeaderValue::from_str(
        id.as_hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )
    .expect("a UUID is a valid header value")
}

/// Every request gets an id, returned in `X-Request-Id`, and is served inside a task-local
/// [`tessera_core::audit::RequestContext`] (client IP, request id) that the audit trail and the
/// log formatter read, so every line logged while serving it names it; and one access line for
/// operators: method, route template, status, duration. Never the query string, headers or
/// body, which carry credentials.
async fn access_log(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let context = tessera_core::audit::RequestContext {
        ip: request
            .extensions()
            .get::<axum::extract::ConnectInfo<app::Peer>>()
            .map(|c| c.0.0.ip()),
        request_id: id.to_str().ok().map(std::sync::Arc::from),
    };
    // Nothing more is collected unless a metric or the access line will be written: this runs
    // on every request.
    let log = tracing::enabled!(target: "tessera::access", tracing::Level::INFO);
    let measure = log || crate::metrics::enabled();
    let seen = measure.then(|| {
        let route = crate::metrics::intern(
            request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", |p| p.as_str()),
        );
        (Instant::now(), request.method().clone(), route)
    });
    let served = async move {
        let response = next.run(request).await;
        if let Some((started, method, route)) = seen {
            let elapsed = started.elapsed();
            crate::metrics::request(
                route,
                &method,
                response.status().as_u16(),
                elapsed.as_secs_f64(),
            );
            if log {
                tracing::info!(
                    target: "tessera::access",
                    %method,
                    route,
                    status = response.status().as_u16(),
                    micros = elapsed.as_micros() as u64,
                    "request"
                );
            }
        }
        response
    };
    let mut response = tessera_core::audit::CONTEXT.scope(context, served).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when it has a listener of its own.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the admin API is served when it has a listener of its own.
    pub admin_addr: Option<SocketAddr>,
    admin_served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub engine: Arc<Engine>,
    draining: conn::Draining,
    /// Tells every listener to stop accepting and drain.
    shutdown: watch::Sender<bool>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics_served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    sync: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Begin a graceful shutdown: `/readyz` answers 503 from now on, so a load balancer stops
    /// sending this node new connections, and every response closes its connection, so
    /// keep-alive clients move to another node. Requests are still served in full; call
    /// [`RunningServer::shutdown`] when the load balancer has had time to notice.
    pub fn start_draining(&self) {
        self.draining.start();
    }

    /// Stop accepting connections, let in-flight requests finish, then return.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        // Every listener drains at once; an admin change in flight finishes like a token
        // request does.
        let result = self.served.await.unwrap_or(Ok(()));
        for side in [self.admin_served, self.metrics_served]
            .into_iter()
            .flatten()
        {
            let _ = side.await;
        }
        self.engine.flush_audit().await;
        self.sync.abort();
        result
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The cause is the error's source, which `{:#}` prints after this.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// Bind one listener (the main one, or the admin API's or metrics' own), and the address it
/// bound (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let bind_error = |source| ServeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// The listener of something served on its own address ([`ServedAt::Listen`]).
async fn own_listener(at: ServedAt) -> Result<Option<(TcpListener, SocketAddr)>, ServeError> {
    match at {
        ServedAt::Listen(addr) => bind(addr).await.map(Some),
        _ => Ok(None),
    }
}

/// Bind, build the engine, and serve in the background.
pub async fn start(
    store: Arc<dyn Store>,
    master: MasterKey,
    config: ServerConfig,
) -> Result<RunningServer, ServeError> {
    let tls_config = config.tls.as_ref().map(tls::server_config).transpose()?;
    let (listener, addr) = bind(config.listen).await?;
    let mut engine_config = config.engine;
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    engine_config.issuer = config
        .issuer
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    engine_config.dev_redirect_uri = Some(format!(
        "{}{}",
        engine_config.issuer,
        pages::DEBUG_CALLBACK_PATH
    ));
    if engine_config.audience.is_empty() {
        engine_config.audience = engine_config.issuer.clone();
    }
    // Before the engine starts, so that what it records from the first moment is kept.
    let metrics = (config.metrics != ServedAt::Off).then(crate::metrics::install);
    let admin = (config.admin != ServedAt::Off)
        .then(|| Arc::new(app::AdminState::new(Arc::clone(&store), master.clone())));
    let engine = Arc::new(Engine::start(store, engine_config, master, unix_now()).await?);
    let sync = engine.spawn_sync();
    let state = AppState {
        engine: Arc::clone(&engine),
        metrics,
        admin,
        draining: conn::Draining::default(),
    };
    let draining = state.draining.clone();
    let admin_listener = own_listener(config.admin).await?;
    let metrics_listener = own_listener(config.metrics).await?;
    let https = tls_config.is_some();
    let app = routes(state.clone(), config.metrics, config.admin, https);
    let (tx, rx) = watch::channel(false);
    let stop = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    let limits = config.limits;
    let proxies = config.trusted_proxies;
    // The admin API and metrics are served over TLS when the API is; they get a cap of their
    // own, so a flood of the main listener leaves them reachable.
    let tls = tls_config.map(tokio_rustls::TlsAcceptor::from);
    let side = conn::ConnectionLimits {
        max_connections: SIDE_LISTENER_CONNECTIONS,
        ..limits
    };
    let served = tokio::spawn(conn::serve(
        listener,
        tls.clone(),
        app,
        limits,
        proxies.clone(),
        draining.clone(),
        stop(),
    ));
    let serve_side = |listener, app| {
        let (tls, proxies) = (tls.clone(), proxies.clone());
        tokio::spawn(conn::serve(
            listener,
            tls,
            app,
            side,
            proxies,
            draining.clone(),
            stop(),
        ))
    };
    let admin_addr = admin_listener.as_ref().map(|(_, bound)| *bound);
    let admin_served = admin_listener.map(|(listener, _)| {
        serve_side(
            listener,
            layered(admin::routes(&state), state.clone(), https),
        )
    });
    let metrics_addr = metrics_listener.as_ref().map(|(_, bound)| *bound);
    let metrics_served = metrics_listener.map(|(listener, _)| {
        let routes = Router::new().route("/metrics", axum::routing::get(crate::metrics::render));
        serve_side(listener, layered(routes, state, https))
    });
    Ok(RunningServer {
        addr,
        admin_addr,
        admin_served,
        metrics_addr,
        draining,
        engine,
        shutdown: tx,
        served,
        metrics_served,
        sync,
    })
}
