//! Rate budgets as a database can keep them, for limits that must hold across nodes: the
//! generic cell rate algorithm (GCRA), whose whole state per key is one time, `tat`, the moment
//! the budget will be whole again. Taking `n` units moves it `n` periods later; a budget whose
//! `tat` has passed is whole, the same as no row at all, so the janitor may delete it.
//!
//! [`take`] is the step every backend runs under the key's row lock, with the database's clock
//! where nodes share it (see `BudgetStore`); the engine's limiter (`engine::limits`) leases
//! units from it a few at a time ([`Quota::lease_size`]).

use std::num::NonZeroU32;
use std::time::Duration;

/// Whose budgets a limit counts, which decides the connections its leases take where nodes
/// share the database: a flood of budgets that anyone can make must not delay, and so unshare,
/// the budgets of callers that signed in (found by an attack: `/authorize` requests from
/// thousands of addresses, each a first request and so a lease, filled the lease connections
/// until the token limit's leases timed out and every node counted it alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Partners and clients that authenticated (the token limit).
    Callers,
    /// Requesters by address, and what they ask of a partner without signing in (the
    /// `/authorize` and registration throttles).
    Requesters,
}

/// A budget: `burst` units at once, then one more every `period_us` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub period_us: i64,
    pub burst: u32,
}

/// The least a node leases at once: 50 ms of the rate, so that units a node holds and does not
/// spend are a small part of the budget (the limiter leases more at a time for a busy key).
const LEASE_SPAN_US: i64 = 50_000;

impl Quota {
    /// `n` a second, `n` at once.
    pub fn per_second(n: NonZeroU32) -> Quota {
        Quota {
            period_us: (1_000_000 / i64::from(n.get())).max(1),
            burst: n.get(),
        }
    }

    /// One every `period` (at least a microsecond), `burst` at once.
    pub fn every(period: Duration, burst: NonZeroU32) -> Quota {
        Quota {
            period_us: i64::try_from(period.as_micros()).unwrap_or(i64::MAX).max(1),
            burst: burst.get(),
        }
    }

    /// The fewest units a node takes from the shared budget at a time: 50 ms of the rate
    /// (`LEASE_SPAN_US`), at least one, at most the burst.
    pub fn lease_size(self) -> u32 {
        let span = (LEASE_SPAN_US / self.period_us).clamp(1, i64::from(self.burst.max(1)));
        u32::try_from(span).unwrap_or(1)
    }
}

/// Take up to `want` units at `now` (microseconds) from a budget whose state is `tat` (`None`:
/// whole). `Ok((units, tat))`: at least one unit taken, and the state to store;
/// `Err(wait)`: none is left, and the microseconds until one is.
pub fn take(tat: Option<i64>, now: i64, quota: Quota, want: u32) -> Result<(u32, i64), i64> {
    let t = quota.period_us.max(1);
    let burst = i64::from(quota.burst.max(1));
    // A budget cannot be more than whole: a `tat` in the past counts from now.
    let from = tat.map_or(now, |tat| tat.max(now));
    let left = ((now + burst * t - from) / t).clamp(0, burst);
    if left == 0 {
        // The next unit is there once `from` is at most (burst - 1) periods ahead.
        return Err((from - (burst - 1) * t - now).max(1));
    }
    let units = left.min(i64::from(want.max(1)));
    Ok((units as u32, from + units * t))
}

/// Microseconds since the Unix epoch by this machine's clock: what a store whose nodes share no
/// clock (SQLite, one node) counts budgets in.
pub fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(per_second: u32) -> Quota {
        Quota::per_second(NonZeroU32::new(per_second).unwrap())
    }

    #[test]
    fn a_whole_budget_gives_its_burst_then_one_unit_a_period() {
        let quota = q(10); // 100 ms a unit, 10 at once
        let now = 1_000_000;
        let (units, tat) = take(None, now, quota, 4).unwrap();
        assert_eq!((units, tat), (4, now + 400_000));
        let (units, tat) = take(Some(tat), now, quota, 100).unwrap();
        assert_eq!((units, tat), (6, now + 1_000_000), "the rest of the burst");
        assert_eq!(take(Some(tat), now, quota, 1), Err(100_000), "one period");
        assert_eq!(take(Some(tat), now + 99_999, quota, 1), Err(1));
        let (units, tat) = take(Some(tat), now + 100_000, quota, 5).unwrap();
        assert_eq!((units, tat), (1, now + 1_100_000), "one unit a period");
    }

    #[test]
    fn a_budget_in_the_past_is_whole_and_never_more() {
        let quota = q(10);
        assert_eq!(take(Some(0), 5_000_000, quota, 50), Ok((10, 6_000_000)));
        assert_eq!(
            take(Some(0), 5_000_000, quota, 50),
            take(None, 5_000_000, quota, 50)
        );
    }

    #[test]
    fn a_budget_spent_ahead_of_now_waits_out_the_difference() {
        // Spent in full at 1_600_000 and asked again at 1_500_000 (one clock must count a
        // budget: the store's): the wait is the period and the difference.
        let quota = q(10);
        let (_, tat) = take(None, 1_600_000, quota, 10).unwrap();
        assert_eq!(take(Some(tat), 1_500_000, quota, 1), Err(200_000));
    }

    #[test]
    fn units_taken_over_time_never_exceed_burst_plus_rate() {
        let quota = q(50);
        let (mut tat, mut taken) = (None, 0u32);
        for ms in 0..=2_000 {
            if let Ok((units, next)) = take(tat, ms * 1_000, quota, quota.lease_size()) {
                taken += units;
                tat = Some(next);
            }
        }
        // 50 at once, then 50 a second for two seconds.
        assert_eq!(taken, 150);
    }

    #[test]
    fn a_lease_is_fifty_milliseconds_of_the_rate_within_one_and_the_burst() {
        assert_eq!(q(50).lease_size(), 2);
        assert_eq!(q(10_000).lease_size(), 500);
        assert_eq!(q(1).lease_size(), 1);
        let slow = Quota::every(Duration::from_secs(2), NonZeroU32::new(10).unwrap());
        assert_eq!((slow.period_us, slow.lease_size()), (2_000_000, 1));
        let tiny_burst = Quota {
            period_us: 10,
            burst: 3,
        };
        assert_eq!(tiny_burst.lease_size(), 3);
    }
}
