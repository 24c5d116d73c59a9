//! The engine's metrics, named in one place. Each function records one event through the
//! `metrics` facade; without an installed recorder (the CLI, `--metrics off`) a call costs a
//! relaxed atomic load. The server installs a Prometheus recorder and calls [`describe`] once;
//! what is cheaper to read when scraped than to record on every request (cache sizes, the
//! Argon2 queue, the change-feed position) is in [`crate::Engine::gauges`] instead.
//!
//! Labels take a small fixed set of values (never a client id, username or token), so that the
//! number of series stays bounded whatever clients send.

use std::sync::OnceLock;

use dashmap::DashMap;
use metrics::{
    Counter, Unit, counter, describe_counter, describe_gauge, describe_histogram, histogram,
};

/// Metric handles of the per-request metrics, looked up in the recorder once per label set
/// and kept (a registry look-up hashes the name and labels; a kept handle is one atomic add).
/// The server installs its recorder before the engine starts, so no handle is taken from the
/// no-op recorder in a process that has a real one.
pub struct Handles<K, V = Counter>(OnceLock<DashMap<K, V>>);

impl<K: std::hash::Hash + Eq + Copy, V: Clone> Default for Handles<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: std::hash::Hash + Eq + Copy, V: Clone> Handles<K, V> {
    pub const fn new() -> Self {
        Handles(OnceLock::new())
    }

    /// The handles kept for `key`, made by `make` the first time.
    pub fn get(&self, key: K, make: impl FnOnce() -> V) -> V {
        let map = self.0.get_or_init(DashMap::new);
        if let Some(c) = map.get(&key) {
            return c.clone();
        }
        map.entry(key).or_insert_with(make).clone()
    }
}

/// A look-up in one of the engine's caches: `credential` (verified password pairs),
/// `partner_token` (partner API tokens) or `token` (verified access tokens).
pub fn cache(cache: &'static str, hit: bool) {
    static HANDLES: Handles<(&str, bool)> = Handles::new();
    HANDLES
        .get((cache, hit), || {
            counter!("tessera_cache_requests_total", "cache" => cache, "result" => if hit { "hit" } else { "miss" })
        })
        .increment(1);
}

/// Tokens issued by one grant to a `partner` (the partner dialect) or a registered `client`
/// (the standard dialect).
pub fn issued(grant: &'static str, caller: &'static str) {
    static HANDLES: Handles<(&str, &str)> = Handles::new();
    HANDLES
        .get(
            (grant, caller),
            || counter!("tessera_tokens_issued_total", "grant" => grant, "caller" => caller),
        )
        .increment(1);
}

/// One store call (PostgreSQL) or one group commit / keyed read (SQLite) of `backend`, started
/// at `started` (the backends record it; the names are kept here with the rest).
pub fn db_call(backend: &'static str, started: std::time::Instant) {
    histogram!("tessera_db_call_seconds", "backend" => backend)
        .record(started.elapsed().as_secs_f64());
}

/// A database call that ran out of time (a pool that handed out no connection, a statement or
/// call past the store timeout, a SQLite lock not granted in time) and answered `Unavailable`.
pub fn db_timeout(backend: &'static str) {
    counter!("tessera_db_timeouts_total", "backend" => backend).increment(1);
}

/// A password check refused because the username's lockout bucket is full.
pub fn lockout() {
    counter!("tessera_lockouts_total").increment(1);
}

/// A request refused by a rate limit (`token`, `flows`, `registrations`) or by the full Argon2
/// queue (`password_queue`).
pub fn refused(limiter: &'static str) {
    counter!("tessera_rate_limited_total", "limiter" => limiter).increment(1);
}

/// A refresh-token outcome: `rotated`, `retried` (a retry within the grace got a successor
/// again), `reuse_detected`, `family_revoked` (by reuse or by a revocation request).
pub fn refresh(outcome: &'static str) {
    counter!("tessera_refresh_total", "outcome" => outcome).increment(1);
}

/// One Argon2id check or hash, from its admission to its answer (the wait for a slot included).
pub fn password_check(seconds: f64) {
    histogram!("tessera_password_check_seconds").record(seconds);
}

/// Rows the janitor deleted of one kind.
pub fn janitor_deleted(what: &'static str, rows: u64) {
    counter!("tessera_janitor_deleted_total", "what" => what).increment(rows);
}

/// Audit events appended in one batch, and how long the append took.
pub fn audit_appended(events: usize, seconds: f64) {
    counter!("tessera_audit_events_total").increment(events as u64);
    histogram!("tessera_audit_append_seconds").record(seconds);
}

/// An audit event dropped because the queue was full.
pub fn audit_dropped() {
    counter!("tessera_audit_dropped_total").increment(1);
}

/// A full reload of the caches after a gap in the change feed.
pub fn feed_reloaded() {
    counter!("tessera_change_feed_reloads_total").increment(1);
}

/// Change-feed entries this node applied.
pub fn feed_applied(n: usize) {
    counter!("tessera_change_feed_applied_total").increment(n as u64);
}

/// Help texts for the metrics above, and those the server and the stores record.
pub fn describe() {
    describe_histogram!(
        "tessera_db_call_seconds",
        Unit::Seconds,
        "Store calls (PostgreSQL), group commits and keyed reads (SQLite)"
    );
    describe_counter!(
        "tessera_db_timeouts_total",
        "Database calls that ran out of time (pool, statement or lock timeout)"
    );
    describe_counter!(
        "tessera_tokens_issued_total",
        "Token responses, by grant and by caller (partner: partner dialect; client: standard)"
    );
    describe_counter!(
        "tessera_cache_requests_total",
        "Look-ups in the credential and verified-token caches, by cache and hit or miss"
    );
    describe_counter!(
        "tessera_lockouts_total",
        "Password checks refused because the username is locked out"
    );
    describe_counter!(
        "tessera_rate_limited_total",
        "Requests refused by a rate limit or the full Argon2 queue (429 or 503)"
    );
    describe_counter!(
        "tessera_refresh_total",
        "Refresh-token rotations, lossless retries, reuse detections and family revocations"
    );
    describe_histogram!(
        "tessera_password_check_seconds",
        Unit::Seconds,
        "Argon2id checks, waiting for a slot included"
    );
    describe_counter!(
        "tessera_janitor_deleted_total",
        "Rows the janitor deleted, by kind"
    );
    describe_counter!("tessera_audit_events_total", "Audit events stored");
    describe_histogram!(
        "tessera_audit_append_seconds",
        Unit::Seconds,
        "Appending one batch of audit events"
    );
    describe_counter!(
        "tessera_audit_dropped_total",
        "Audit events dropped because the queue was full"
    );
    describe_counter!(
        "tessera_change_feed_reloads_total",
        "Full cache reloads after the node missed more of the feed than it keeps"
    );
    describe_counter!(
        "tessera_change_feed_applied_total",
        "Change-feed entries applied by this node"
    );
    describe_gauge!(
        "tessera_password_queue",
        "Argon2 checks admitted now (running or waiting)"
    );
    describe_gauge!(
        "tessera_password_queue_capacity",
        "Argon2 checks that may be admitted at once"
    );
    describe_gauge!(
        "tessera_change_feed_position",
        "The last change-feed entry this node applied"
    );
    describe_gauge!(
        "tessera_change_feed_lag_seconds",
        Unit::Seconds,
        "Time since this node last read the change feed successfully"
    );
    describe_gauge!("tessera_cache_entries", "Entries in each engine cache");
    describe_gauge!(
        "tessera_revoked_entries",
        "Revoked token ids and sessions held in memory"
    );
}
