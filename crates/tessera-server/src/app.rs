//! What every handler shares: the state ([`AppState`], with the admin API's
//! [`AdminState`] when it is served), the request limits, and the
//! `Cache-Control: no-store` marking of responses that carry tokens or secrets.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use tessera_core::Engine;
use tessera_core::master::MasterKey;
use tessera_core::store::Store;

/// Largest request body accepted (bytes). Tessera's largest request is a token exchange with a
/// JWT inside, well under 16 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// The Prometheus recorder's handle, when metrics are on.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// What the admin API needs, when it is served.
    pub admin: Option<Arc<AdminState>>,
    /// Set when a graceful shutdown begins: readiness then answers 503.
    pub draining: crate::conn::Draining,
}

/// What the admin API needs beyond the engine: the store (it writes as the CLI does, and the
/// change feed tells every node) and the master key (to make signing keys).
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    /// Keys the `Idempotency-Key` fingerprints (derived from the master key once).
    pub fingerprint_key: zeroize::Zeroizing<[u8; 32]>,
}

impl AdminState {
    pub fn new(store: Arc<dyn Store>, master: MasterKey) -> AdminState {
        AdminState {
            fingerprint_key: master.derive(b"tessera idempotency fingerprint v1"),
            store,
            master,
        }
    }
}

/// The address a request came from, for handlers that throttle per requester and for the audit
/// trail: the TCP peer, or, from a trusted proxy, the client it names
/// ([`crate::forwarded::TrustedProxies`]). The connection loop puts it in every request.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

impl Peer {
    /// The key a per-requester throttle counts under
    /// ([`tessera_core::audit::requester_key`]).
    pub fn requester(&self) -> String {
        tessera_core::audit::requester_key(self.0.ip())
    }
}

/// Mark a response as not cacheable (RFC 6749 §5.1).
pub fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

#[cfg(test)]
mod tests {
    use super::Peer;

    #[test]
    fn a_requester_is_an_ipv4_address_or_an_ipv6_slash_64() {
        let of = |s: &str| Peer(s.parse().unwrap()).requester();
        assert_eq!(of("192.0.2.7:443"), "192.0.2.7");
        assert_eq!(of("[::ffff:192.0.2.7]:443"), "192.0.2.7");
        assert_eq!(of("[2001:db8:1:2:aaaa::1]:443"), "2001:db8:1:2::/64");
        assert_eq!(
            of("[2001:db8:1:2:ffff:ffff:ffff:ffff]:1"),
            of("[2001:db8:1:2::9]:2")
        );
        assert_ne!(of("[2001:db8:1:3::1]:1"), of("[2001:db8:1:2::1]:1"));
    }
}
