//! What the rate limits need from a database shared by many nodes: budgets every node counts
//! in (see [`crate::budget`]).

use super::*;
use crate::budget::Quota;

/// Rate budgets, one row per key, shared by every node of the database.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Whether other servers may serve from this database at the same time (PostgreSQL), so
    /// that a limit counted in one node's memory would let N nodes allow N times the rate.
    /// SQLite serves one node, which counts in memory.
    fn shared(&self) -> bool;
    /// Take up to `want` units of `key`'s budget at `now_us` (microseconds) with
    /// [`crate::budget::take`], read and written under one lock, so that the units granted to
    /// concurrent takers (from any node) never exceed the budget. `Ok(Ok(units))`, at least
    /// one; `Ok(Err(wait_us))` when none is left (nothing is written).
    async fn take_budget(
        &self,
        key: &str,
        now_us: i64,
        quota: Quota,
        want: u32,
    ) -> StoreResult<Result<u32, i64>>;
    /// Delete the budgets that are whole again at `now_us` (the same as no row); how many.
    async fn prune_budgets(&self, now_us: i64) -> StoreResult<u64>;
}
