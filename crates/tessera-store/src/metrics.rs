//! What the backends record about the database: how long calls take, and how many ran out of
//! time (a pool that handed out no connection, a statement or call past the store timeout, a
//! SQLite lock not granted in time). Pool use is read when scraped (`Store::pool_use`).

use std::time::Instant;

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// One store call (PostgreSQL) or one group commit / keyed read (SQLite), started at `started`.
pub(crate) fn call(backend: &'static str, started: Instant) {
    histogram!("tessera_db_call_seconds", "backend" => backend)
        .record(started.elapsed().as_secs_f64());
}

/// A call that ran out of time and answered `Unavailable`.
pub(crate) fn timeout(backend: &'static str) {
    counter!("tessera_db_timeouts_total", "backend" => backend).increment(1);
}

/// Help texts, for the server to register once with its recorder.
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
}
