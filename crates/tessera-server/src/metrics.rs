//! `/metrics` in the Prometheus text format, and what the HTTP layer records: requests by route
//! template, method and status, their latency, and errors by dialect and wire code. The engine
//! and the stores record their own metrics (named in `tessera_core::telemetry`) through the
//! same process-wide recorder, installed once by
//! [`install`]; gauges that are cheaper to read when scraped than to track per request (the
//! Argon2 queue, caches, the change feed, the database pool) are set in [`render`].
//!
//! Every label takes one of a bounded set of values: route templates (not paths), status codes,
//! error codes, grant names. Nothing a client sends becomes a label.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tessera_core::telemetry::Handles;

use crate::app::AppState;

/// Latency buckets, in seconds: from 100 µs (a cached introspection) to 10 s (a stuck
/// database).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process-wide Prometheus recorder (once; later calls return the same handle).
/// Until it is installed, every metric call is a no-op.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the buckets are not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            tessera_core::telemetry::describe();
            gauge!("tessera_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// Whether a recorder is installed (metrics are on in this process).
pub(crate) fn enabled() -> bool {
    HANDLE.get().is_some()
}

/// `GET /metrics`: the gauges read now, then every metric of this process.
pub async fn render(State(app): State<AppState>) -> Response {
    let Some(handle) = &app.metrics else {
        return (StatusCode::NOT_FOUND, "metrics are turned off\n").into_response();
    };
    let g = app.engine.gauges(tessera_core::unix_now());
    gauge!("tessera_password_queue").set(g.password_queue as f64);
    gauge!("tessera_password_queue_capacity").set(g.password_queue_capacity as f64);
    gauge!("tessera_change_feed_position").set(g.feed_position as f64);
    gauge!("tessera_change_feed_lag_seconds").set(g.feed_lag_secs as f64);
    gauge!("tessera_cache_entries", "cache" => "credential").set(g.credential_cache as f64);
    gauge!("tessera_cache_entries", "cache" => "token").set(g.token_cache as f64);
    gauge!("tessera_cache_entries", "cache" => "record").set(g.record_cache as f64);
    gauge!("tessera_revoked_entries").set(g.revoked as f64);
    let pool = app.engine.pool_use();
    gauge!("tessera_db_pool_connections", "state" => "open").set(f64::from(pool.open));
    gauge!("tessera_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    gauge!("tessera_db_pool_connections", "state" => "max").set(f64::from(pool.max));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// One answered request. The handles of each (route, method, status) are looked up in the
/// recorder once and kept, so that a request costs a hash look-up and two atomic updates.
pub(crate) fn request(route: &'static str, method: &axum::http::Method, status: u16, seconds: f64) {
    static HANDLES: Handles<(&str, &str, u16), (metrics::Counter, metrics::Histogram)> =
        Handles::new();
    let method = method_label(method);
    let (count, time) = HANDLES.get((route, method, status), || {
        let status = intern_status(status);
        (
            counter!("tessera_http_requests_total", "route" => route, "method" => method, "status" => status),
            metrics::histogram!("tessera_http_request_seconds", "route" => route, "method" => method),
        )
    });
    count.increment(1);
    time.record(seconds);
}

/// One error answered, by dialect (`partner`, `standard`, `pages`) and wire code.
pub(crate) fn error(dialect: &'static str, code: &'static str) {
    counter!("tessera_errors_total", "dialect" => dialect, "code" => code).increment(1);
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Route templates are few (the router's, and `unmatched`); each is leaked once so that a
/// label costs no allocation per request.
pub(crate) fn intern(route: &str) -> &'static str {
    static ROUTES: OnceLock<DashMap<String, &'static str>> = OnceLock::new();
    let routes = ROUTES.get_or_init(DashMap::new);
    if let Some(r) = routes.get(route) {
        return *r;
    }
    *routes
        .entry(route.to_string())
        .or_insert_with(|| Box::leak(route.to_string().into_boxed_str()))
}

fn intern_status(status: u16) -> &'static str {
    static CODES: OnceLock<Vec<String>> = OnceLock::new();
    let codes = CODES.get_or_init(|| (0..600).map(|c| c.to_string()).collect());
    codes
        .get(usize::from(status))
        .map_or("other", String::as_str)
}

fn describe() {
    describe_counter!(
        "tessera_http_requests_total",
        "Requests answered, by route template, method and status"
    );
    describe_histogram!(
        "tessera_http_request_seconds",
        Unit::Seconds,
        "Time from a request's head to its response, by route template and method"
    );
    describe_counter!(
        "tessera_errors_total",
        "Error answers, by dialect and wire error code"
    );
    describe_gauge!(
        "tessera_db_pool_connections",
        "Database connections of this node: open, idle, and the most there may be"
    );
    describe_gauge!("tessera_build_info", "The running version, as a label");
}
