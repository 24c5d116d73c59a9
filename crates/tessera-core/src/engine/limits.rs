//! Rate limits: token requests per partner or client, anonymous `/authorize` requests and
//! self-registrations per requester (and per partner).
//!
//! On a database that one node serves (SQLite) a limit is counted in memory (governor: keyed,
//! lock-free, exact). When nodes share the database (PostgreSQL), counting in memory would let N
//! nodes allow N times the rate, so the budget lives in the database ([`crate::budget`], one row
//! per key) and each node **leases** units a few at a time (`Refill`: 50 ms of the rate at
//! first, more for a busy key, at most a quarter of the burst): one round trip per lease, not
//! per request, four to eight a second for a busy key. When a quarter of a lease is left the next
//! is asked for in the background, so a busy key's requests do not wait for the database; only
//! a key's first request, or one that outruns its lease, does. A refusal is remembered until
//! the budget can have a unit again, so a client over its limit costs no round trip either. A node spends
//! its leased units within [`LEASE_LIFE_US`] or drops them, and never admits a unit the
//! database did not grant. Over a second or more the cluster admits at most `burst + rate × t`
//! (`it::cluster_limits`); within a shorter window it can admit up to one lease per node more,
//! because a unit leased shortly before the window may be spent in it (a lease is at most a
//! quarter of the burst, and lives 250 ms). Budgets are counted in the database's clock, so
//! nodes' clocks do not matter.
//!
//! If a lease fails — the database does not answer within the store's timeout
//! (`--db-timeout`), or cannot be reached — the node counts in memory for [`DEGRADED_FOR_US`]
//! (each node the whole rate, as on one node) rather than refuse requests that need no database,
//! such as machine tokens for cached credentials; units already leased are spent first and a
//! refusal the database gave still holds, and a limit made with [`Unleased::Refuse`]
//! (self-registration) refuses instead; one request per node and limit waits out the
//! timeout every [`DEGRADED_FOR_US`]. A slow answer is waited for: a node that merely has too
//! much to do (a flood of unknown clients, found by an attack with a shorter deadline of its
//! own) keeps counting with the others. Leases have connections of their own, so they never
//! queue behind the requests they limit, and the token limit's leases ([`Lane::Callers`]) have
//! others than the page throttles' ([`Lane::Requesters`]), whose keys anyone can make: a flood
//! of `/authorize` requests from thousands of addresses (each a lease) can make only the page
//! throttles fall back to counting on each node (found by an attack, where the token limit
//! admitted up to twice its budget across three nodes).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use quick_cache::sync::Cache;

use crate::budget::{Lane, Quota};
use crate::error::EngineError;
use crate::store::{Store, StoreResult};

/// How long leased units may be spent: a node that goes quiet on a key gives them up. Units
/// spent late are units the budget counted earlier, so this also bounds how far a node's
/// admissions can lag the budget's.
const LEASE_LIFE_US: i64 = 250_000;
/// How long a node counts in memory after the database failed to answer a lease.
const DEGRADED_FOR_US: i64 = 5_000_000;
/// Keys whose lease a node keeps (requesters of the pages are not bounded by the registry); a
/// lease evicted early only strands its units.
const LEASES_KEPT: usize = 65_536;

/// Microseconds on this process's monotonic clock: what leases, refusals and the degraded
/// spell are timed in, so that a step of the wall clock can neither stretch a refusal nor keep
/// a lease alive. (The budgets themselves count in the store's clock.)
fn monotonic_micros() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX)
}

/// Ask the store for `key`'s next lease of limit `name`, sized by `refill` (which notes when a
/// lease was granted); the answer and the moment it came (a slow lease is timed from its
/// answer, so that it does not arrive already spent).
async fn ask(
    store: &Arc<dyn Store>,
    (name, lane): (&str, Lane),
    key: &str,
    quota: Quota,
    refill: &mut Refill,
) -> (StoreResult<Result<u32, i64>>, i64) {
    let want = refill.next(monotonic_micros(), quota);
    let answer = store
        .take_budget(&format!("{name}:{key}"), quota, want, lane)
        .await;
    let now = monotonic_micros();
    if matches!(answer, Ok(Ok(_))) {
        refill.filled_at = now;
    }
    (answer, now)
}

/// What a limit does while its budgets cannot be leased.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unleased {
    /// Count on this node alone (each node the whole rate): for limits whose refusal would
    /// stop requests that need no database.
    CountAlone,
    /// Refuse ("busy, retry shortly"): for rare requests a flood must not unlock, such as
    /// self-registration (an attack degraded the lane with a flood and got a partner's budget
    /// again from each node).
    Refuse,
}

/// One limit: a quota per key.
pub(crate) struct Limiter {
    /// `token`, `flows` or `registrations`: the metric's label and the budgets' key prefix.
    name: &'static str,
    /// Whose budgets these are: which lease connections they take.
    lane: Lane,
    unleased: Unleased,
    quota: Quota,
    /// Counts when the database is not shared, and while it does not answer.
    local: DefaultKeyedRateLimiter<String>,
    /// Key → the units this node holds; `None` when the database is not shared.
    leases: Option<Cache<String, Arc<Lease>>>,
    /// Until when (µs) this node counts in memory because the database did not answer.
    degraded_until: AtomicI64,
}

/// Units of one key's budget that this node holds.
#[derive(Default)]
struct Lease {
    /// Units left; below zero after takers raced past the last one.
    units: AtomicI64,
    /// The units may be spent before this moment (µs).
    until: AtomicI64,
    /// The budget has no unit before this moment (µs): refuse without asking.
    refused_until: AtomicI64,
    /// When this many units are left, the next lease is asked for in the background, so that
    /// no request waits for it (a quarter of the last lease; 0, never, for leases under 4).
    low_mark: AtomicI64,
    /// One lease request at a time per key on this node, and how large the next should be.
    refill: tokio::sync::Mutex<Refill>,
}

/// The size of a key's leases on this node: the quota's [`Quota::lease_size`] at first,
/// doubled each time a lease is spent within [`QUICK_US`] (up to a quarter of the burst), back
/// to the smallest after a lease outlives [`LEASE_LIFE_US`]. A busy key then costs four to eight
/// round trips a second per node, whatever its rate, and a quiet one holds few units.
#[derive(Default)]
struct Refill {
    want: u32,
    filled_at: i64,
}

/// A lease spent faster than this asks for twice as many units next time.
const QUICK_US: i64 = 125_000;

impl Refill {
    /// Units to ask for at `now`.
    fn next(&mut self, now: i64, quota: Quota) -> u32 {
        let least = quota.lease_size();
        let most = least.max(quota.burst / 4);
        let since = now - self.filled_at;
        self.want = if since < QUICK_US {
            self.want.saturating_mul(2)
        } else if since >= LEASE_LIFE_US {
            least
        } else {
            self.want
        }
        .clamp(least, most);
        self.want
    }
}

impl Lease {
    /// Spend a held unit at `now`: `Some(Ok(left))` with the units left after it,
    /// `Some(Err(wait_us))` while refused, `None` when the database must be asked.
    fn spend(&self, now: i64) -> Option<Result<i64, i64>> {
        let refused_until = self.refused_until.load(Ordering::Acquire);
        if now < refused_until {
            return Some(Err(refused_until - now));
        }
        if now < self.until.load(Ordering::Acquire) {
            let held = self.units.fetch_sub(1, Ordering::AcqRel);
            if held > 0 {
                return Some(Ok(held - 1));
            }
        }
        None
    }

    /// Hold `units` (one of them already spent by the caller) until `until`. The count is
    /// stored before the time, so a taker that sees the new time sees the new count.
    fn fill(&self, units: u32, until: i64) {
        self.units.store(i64::from(units) - 1, Ordering::Release);
        self.low_mark.store(i64::from(units / 4), Ordering::Release);
        self.until.store(until, Ordering::Release);
    }

    /// Hold `units` more, beside those left, until `until` (a background top-up). Takers that
    /// raced past zero in the meantime spent nothing, so the count starts from zero at least.
    fn add(&self, units: u32, until: i64) {
        let _ = self
            .units
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.max(0) + i64::from(units))
            });
        self.low_mark.store(i64::from(units / 4), Ordering::Release);
        self.until.store(until, Ordering::Release);
    }
}

impl Limiter {
    /// A limit of `quota` per key of `lane`; counted in the database when `shared`.
    pub(crate) fn new(
        name: &'static str,
        lane: Lane,
        unleased: Unleased,
        quota: Quota,
        shared: bool,
    ) -> Limiter {
        let period = Duration::from_micros(quota.period_us.unsigned_abs());
        let burst = std::num::NonZeroU32::new(quota.burst).unwrap_or(std::num::NonZeroU32::MIN);
        Limiter {
            name,
            lane,
            unleased,
            quota,
            local: RateLimiter::keyed(
                governor::Quota::with_period(period)
                    .expect("a period of at least a microsecond")
                    .allow_burst(burst),
            ),
            leases: shared.then(|| Cache::new(LEASES_KEPT)),
            degraded_until: AtomicI64::new(0),
        }
    }

    /// Take one unit of `key`'s budget, or refuse with the seconds until the next.
    pub(crate) async fn charge(
        &self,
        store: &Arc<dyn Store>,
        key: &str,
    ) -> Result<(), EngineError> {
        let Some(leases) = &self.leases else {
            return self.charge_locally(key);
        };
        let now = monotonic_micros();
        let lease = leases
            .get_or_insert_with(key, || Ok::<_, Infallible>(Arc::default()))
            .unwrap_or_else(|never| match never {});
        // Units the database granted are spent, and a refusal it gave holds, even while the
        // node counts alone (found by an attack: one stalled lease, and a partner whose
        // budget the database had spent got a fresh one from each node).
        if let Some(spent) = lease.spend(now) {
            let left = spent.map_err(|wait| self.refused(wait))?;
            // Exactly one taker sees each count: the one that reaches the mark tops up.
            if left > 0 && left == lease.low_mark.load(Ordering::Acquire) {
                self.top_up(store, &lease, key);
            }
            return Ok(());
        }
        if now < self.degraded_until.load(Ordering::Acquire) {
            return self.alone(key);
        }
        let mut refill = lease.refill.lock().await;
        // Whoever held the turn before may have refilled the lease, or been refused, or found
        // the database failing (then waiting out the timeout again would only delay this one).
        let now = monotonic_micros();
        if let Some(spent) = lease.spend(now) {
            return spent.map(drop).map_err(|wait| self.refused(wait));
        }
        if now < self.degraded_until.load(Ordering::Acquire) {
            return self.alone(key);
        }
        let asking = (self.name, self.lane);
        let (answer, now) = ask(store, asking, key, self.quota, &mut refill).await;
        match answer {
            Ok(Ok(units)) => {
                lease.fill(units, now + LEASE_LIFE_US);
                Ok(())
            }
            Ok(Err(wait)) => {
                lease.refused_until.store(now + wait, Ordering::Release);
                Err(self.refused(wait))
            }
            Err(error) => {
                // Once per spell: the leases that were waiting with this one fail with it, and
                // a flood must not turn each of them into a log line.
                let was = self
                    .degraded_until
                    .swap(now + DEGRADED_FOR_US, Ordering::AcqRel);
                if was <= now {
                    let then = match self.unleased {
                        Unleased::CountAlone => "counting on this node alone",
                        Unleased::Refuse => "refusing",
                    };
                    tracing::warn!(
                        limiter = self.name,
                        %error,
                        "could not lease a rate budget; {then} for 5 s"
                    );
                }
                self.alone(key)
            }
        }
    }

    /// Ask for `key`'s next lease in the background while units are left. If another lease
    /// request of the key is under way, that one serves; a refusal or a failure is left to the
    /// request that finds the lease empty.
    fn top_up(&self, store: &Arc<dyn Store>, lease: &Arc<Lease>, key: &str) {
        let (store, lease, quota, asking) = (
            Arc::clone(store),
            Arc::clone(lease),
            self.quota,
            (self.name, self.lane),
        );
        let key = key.to_string();
        tokio::spawn(async move {
            let Ok(mut refill) = lease.refill.try_lock() else {
                return;
            };
            if let (Ok(Ok(units)), now) = ask(&store, asking, &key, quota, &mut refill).await {
                lease.add(units, now + LEASE_LIFE_US);
            }
        });
    }

    /// A charge while the budgets cannot be leased ([`Unleased`]).
    fn alone(&self, key: &str) -> Result<(), EngineError> {
        match self.unleased {
            Unleased::CountAlone => self.charge_locally(key),
            Unleased::Refuse => {
                crate::telemetry::refused(self.name);
                Err(EngineError::Busy {
                    retry_after_secs: (DEGRADED_FOR_US / 1_000_000) as u64,
                })
            }
        }
    }

    fn charge_locally(&self, key: &str) -> Result<(), EngineError> {
        self.local.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.refused(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX))
        })
    }

    /// Count a refusal; the error with the whole seconds (at least one) until the next unit.
    fn refused(&self, wait_us: i64) -> EngineError {
        crate::telemetry::refused(self.name);
        let wait = u64::try_from(wait_us).unwrap_or(0);
        EngineError::RateLimited {
            retry_after_secs: wait.div_ceil(1_000_000).max(1),
        }
    }

    /// Forget in-memory state of keys idle long enough to be whole again.
    pub(crate) fn retain_recent(&self) {
        self.local.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_key_leases_more_at_a_time_and_a_quiet_one_the_least() {
        let quota = Quota::per_second(std::num::NonZeroU32::new(1_000).unwrap());
        assert_eq!((quota.lease_size(), quota.burst / 4), (50, 250));
        let mut refill = Refill::default();
        let mut now = 10_000_000;
        assert_eq!(refill.next(now, quota), 50, "the first lease is the least");
        let mut sizes = Vec::new();
        for _ in 0..4 {
            refill.filled_at = now;
            now += 100_000; // spent in 100 ms
            sizes.push(refill.next(now, quota));
        }
        assert_eq!(
            sizes,
            [100, 200, 250, 250],
            "doubled, up to a quarter of the burst"
        );
        refill.filled_at = now;
        assert_eq!(
            refill.next(now + 200_000, quota),
            250,
            "kept while it lasts"
        );
        refill.filled_at = now;
        assert_eq!(refill.next(now + LEASE_LIFE_US, quota), 50, "a quiet key");
    }

    #[test]
    fn a_lease_spends_what_it_holds_until_it_ends_and_remembers_a_refusal() {
        let lease = Lease::default();
        assert_eq!(lease.spend(0), None, "an empty lease asks the database");
        // Three units leased, the first spent by the request that leased them.
        lease.fill(3, 1_000);
        assert_eq!(lease.spend(10), Some(Ok(1)));
        assert_eq!(lease.spend(10), Some(Ok(0)));
        assert_eq!(lease.spend(10), None, "all three spent");
        assert_eq!(lease.spend(10), None, "takers racing past zero do not wrap");
        // A top-up counts from zero, not from the takers that found none.
        lease.add(2, 1_000);
        assert_eq!(lease.spend(10), Some(Ok(1)));
        assert_eq!(lease.spend(10), Some(Ok(0)));
        assert_eq!(lease.spend(10), None);
        // A lease of 8 asks for the next at 2 left; one of under 4 never ahead of time.
        lease.fill(8, 1_000);
        assert_eq!(lease.low_mark.load(Ordering::Acquire), 2);
        lease.fill(3, 1_000);
        assert_eq!(lease.low_mark.load(Ordering::Acquire), 0);
        lease.fill(5, 1_000);
        assert_eq!(lease.spend(999), Some(Ok(3)));
        assert_eq!(
            lease.spend(1_000),
            None,
            "units left at the lease's end are dropped"
        );
        lease.refused_until.store(2_000, Ordering::Release);
        assert_eq!(lease.spend(1_500), Some(Err(500)), "refused without asking");
        assert_eq!(lease.spend(2_000), None);
    }
}
