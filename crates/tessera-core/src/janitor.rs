//! Retention: deleting what can never be used again (see [`Purge`]), a batch of at most
//! [`JANITOR_BATCH`] at a time with a pause between batches of at least [`JANITOR_YIELD`] times
//! the batch's time, so that no lock is held long or often and the hot paths keep their
//! latency. `serve` runs it every minute (within [`JANITOR_BUDGET`]);
//! `tessera janitor` runs it once, to the end.

use std::time::{Duration, Instant};

use crate::store::{Purge, Store};

/// Rows deleted per batch (per kind of refresh token): small enough for a short transaction.
pub const JANITOR_BATCH: u32 = 100;
/// Shortest pause between batches, so that queued writes go first.
pub const JANITOR_PAUSE: Duration = Duration::from_millis(10);
/// The pause is at least this many times the batch's own time: the janitor holds the
/// database's write lock at most 1/(1 + this) of the time (20%), however slow the disk.
pub const JANITOR_YIELD: u32 = 4;
/// Longest a run of `serve`'s janitor lasts before it leaves the rest to the next minute.
pub const JANITOR_BUDGET: Duration = Duration::from_secs(20);

/// The lifetimes the servers use, which decide what can never be used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The refresh reuse grace, in seconds.
    pub refresh_reuse_grace: i64,
    /// How long a refresh family lives, in seconds.
    pub family_lifetime: i64,
    /// How long audit events are kept, in seconds.
    pub audit: i64,
}

impl Retention {
    /// The `grace` a purge of `what` is given (see [`Purge::cutoffs`]).
    pub fn grace(&self, what: Purge) -> i64 {
        match what {
            Purge::AuditEvents => self.audit,
            Purge::Families => self.family_lifetime + crate::policy::CLOCK_MARGIN,
            _ => self.refresh_reuse_grace,
        }
    }
}

/// Delete what can never be used again at `now` and audit events older than the retention,
/// until nothing is left or `budget` is spent; the rows deleted of each kind.
pub async fn run(
    store: &dyn Store,
    now: i64,
    retention: Retention,
    budget: Duration,
) -> Vec<(Purge, u64)> {
    let started = Instant::now();
    let mut deleted = Vec::new();
    for what in Purge::ALL.into_iter().chain([Purge::AuditEvents]) {
        let grace = retention.grace(what);
        let mut total = 0;
        let mut failures = 0;
        loop {
            let batch_started = Instant::now();
            let n = match store.purge(what, now, grace, JANITOR_BATCH).await {
                Ok(n) => n,
                // A busy database: wait and try again a few times before leaving the rest to
                // the next run.
                Err(e) if failures < 3 => {
                    failures += 1;
                    tracing::debug!(error = %e, what = what.as_str(), "janitor batch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, what = what.as_str(), "janitor batch failed");
                    break;
                }
            };
            total += n;
            // A short batch means nothing is left (or another node holds the turn).
            if n < u64::from(JANITOR_BATCH) || started.elapsed() > budget {
                break;
            }
            tokio::time::sleep(JANITOR_PAUSE.max(batch_started.elapsed() * JANITOR_YIELD)).await;
        }
        deleted.push((what, total));
    }
    deleted
}
