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

/// Delete what can never be used again at `now` (`grace`: the refresh reuse grace) and audit
/// events older than `audit_retention` seconds, until nothing is left or `budget` is spent;
/// the rows deleted of each kind.
pub async fn run(
    store: &dyn Store,
    now: i64,
    grace: i64,
    audit_retention: i64,
    budget: Duration,
) -> Vec<(Purge, u64)> {
    let started = Instant::now();
    let mut deleted = Vec::new();
    for what in Purge::ALL.into_iter().chain([Purge::AuditEvents]) {
        let grace = if what == Purge::AuditEvents {
            audit_retention
        } else {
            grace
        };
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
