//! What every handler shares: the state ([`AppState`]), the request limits, and the
//! `Cache-Control: no-store` marking of responses that carry tokens or secrets.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use tessera_core::Engine;

/// Largest request body accepted (bytes). Tessera's largest request is a token exchange with a
/// JWT inside, well under 16 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The Prometheus recorder's handle, when metrics are on.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// The address a request came from (the TCP peer; a proxy in front answers for its clients),
/// for handlers that throttle per requester. The connection loop puts it in every request.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Mark a response as not cacheable (RFC 6749 §5.1).
pub fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
