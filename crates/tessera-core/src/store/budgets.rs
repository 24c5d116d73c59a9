//! What the rate limits need from a database shared by many nodes: budgets every node counts
//! in (see [`crate::budget`]).

use super::*;
use crate::budget::{Lane, Quota};

/// Rate budgets, one row per key, shared by every node of the database.
#[async_trait]
pub trait BudgetStore: Send + Sync {
    /// Whether other servers may serve from this database at the same time (PostgreSQL), so
    /// that a limit counted in one node's memory would let N nodes allow N times the rate.
    /// SQLite serves one node, which counts in memory.
    fn shared(&self) -> bool;
    /// Take up to `want` units of `key`'s budget now with [`crate::budget::take`], read and
    /// written under one lock, so that the units granted to concurrent takers (from any node)
    /// never exceed the budget. `Ok(Ok(units))`, at least one; `Ok(Err(wait_us))` when none is
    /// left (nothing is written).
    ///
    /// "Now" is the database's clock where nodes share it (PostgreSQL's `clock_timestamp()`),
    /// never a node's: a node whose clock ran ahead would otherwise store a budget that looks
    /// spent to every other node for as long as it is ahead. SQLite, one node, uses its own.
    ///
    /// A shared store takes each [`Lane`]'s budgets on connections of its own, apart from the
    /// requests the limits guard and from each other, so that a flood of one lane's keys can
    /// make only that lane's takes wait (and time out).
    async fn take_budget(
        &self,
        key: &str,
        quota: Quota,
        want: u32,
        lane: Lane,
    ) -> StoreResult<Result<u32, i64>>;
    /// Delete at most `batch` budgets that are whole again now (the same as no row), skipping
    /// any a lease holds; how many.
    async fn prune_budgets(&self, batch: u32) -> StoreResult<u64>;
}
