//! Rate budgets (`BudgetStore`): the units granted for one key, by any number of concurrent
//! takers on any number of connections (nodes), never exceed `burst + rate × t`, counted in the
//! store's one clock, whichever lane (lease connections) they take it through; pruning a whole
//! budget never fails a take of it.

use super::*;
use std::num::NonZeroU32;
use std::time::Duration;
use tessera_core::budget::{Lane, Quota};

/// Ten at once, then one every ten seconds: nothing refills while a test runs.
fn slow() -> Quota {
    Quota::every(Duration::from_secs(10), NonZeroU32::new(10).unwrap())
}

/// Take `want` units of `key` `n` times at once, half through `a` and half through `b`, and in
/// each half through both lanes; how many units were granted.
async fn take_at_once(
    a: &Arc<dyn Store>,
    b: &Arc<dyn Store>,
    key: &'static str,
    want: u32,
    n: usize,
) -> u32 {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let s = Arc::clone(if i % 2 == 0 { a } else { b });
        let lane = if i % 4 < 2 {
            Lane::Callers
        } else {
            Lane::Requesters
        };
        tasks.spawn(async move { s.take_budget(key, slow(), want, lane).await.unwrap() });
    }
    let mut granted = 0;
    while let Some(r) = tasks.join_next().await {
        granted += r.unwrap().unwrap_or(0);
    }
    granted
}

#[tokio::test]
async fn budgets_grant_no_more_than_the_burst_to_concurrent_takers_on_two_nodes() {
    for (name, s, _dir, url) in stores_at().await {
        assert_eq!(s.shared(), name == "postgres", "{name}");
        // A second pool on the same database: another node.
        let other = tessera_store::open(&url, &tessera_store::Options::default())
            .await
            .unwrap();
        // A whole budget: 10 at once, in leases of up to 3.
        assert_eq!(
            take_at_once(&s, &other, "token:p1", 3, 30).await,
            10,
            "{name}"
        );
        match s
            .take_budget("token:p1", slow(), 1, Lane::Callers)
            .await
            .unwrap()
        {
            Err(wait) => assert!(
                (9_000_000..=10_000_000).contains(&wait),
                "{name}: about one period to wait, not {wait} µs"
            ),
            Ok(units) => panic!("{name}: {units} more units from a spent budget"),
        }
        // Other keys are apart.
        assert_eq!(
            take_at_once(&s, &other, "token:p2", 1, 20).await,
            10,
            "{name}"
        );
        // Spent budgets are not whole: nothing to prune.
        assert_eq!(s.prune_budgets(100).await.unwrap(), 0, "{name}");
        // One unit a millisecond, one at once: whole again a millisecond after a take.
        let fast = Quota::every(Duration::from_millis(1), NonZeroU32::new(1).unwrap());
        for key in ["flows:a", "flows:b", "flows:c"] {
            assert_eq!(
                s.take_budget(key, fast, 1, Lane::Requesters).await.unwrap(),
                Ok(1),
                "{name}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            s.prune_budgets(2).await.unwrap(),
            2,
            "{name}: a batch at a time"
        );
        assert_eq!(s.prune_budgets(2).await.unwrap(), 1, "{name}");
        assert_eq!(s.prune_budgets(2).await.unwrap(), 0, "{name}");
    }
}

/// Housekeeping deletes budgets that are whole again while nodes lease from them: a take that
/// meets the delete must still get its units (it used to find no row and fail, which sent the
/// node to counting on its own for 5 s).
#[tokio::test]
async fn pruning_a_whole_budget_never_fails_a_take_of_it() {
    for (name, s, _dir) in stores().await {
        // Whole again a microsecond after each take: every row is always prunable.
        let quota = Quota::every(Duration::from_micros(1), NonZeroU32::new(1).unwrap());
        let pruner = {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut deleted = 0;
                for _ in 0..400 {
                    deleted += s.prune_budgets(1_000).await.unwrap();
                }
                deleted
            })
        };
        let mut takers = tokio::task::JoinSet::new();
        for t in 0..4 {
            let s = Arc::clone(&s);
            takers.spawn(async move {
                for _ in 0..100 {
                    let key = if t % 2 == 0 {
                        "token:hot"
                    } else {
                        "token:warm"
                    };
                    // Granted or refused, never a store error.
                    if let Err(e) = s.take_budget(key, quota, 1, Lane::Callers).await {
                        panic!("a take of {key} failed: {e}");
                    }
                }
            });
        }
        while let Some(done) = takers.join_next().await {
            done.unwrap_or_else(|e| panic!("{name}: a take failed: {e}"));
        }
        assert!(
            pruner.await.unwrap() > 0,
            "{name}: the pruner ran alongside"
        );
    }
}
