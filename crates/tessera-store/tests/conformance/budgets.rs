//! Rate budgets (`BudgetStore`): the units granted for one key, by any number of concurrent
//! takers on any number of connections (nodes), never exceed `burst + rate × t`.

use super::*;
use std::num::NonZeroU32;
use tessera_core::budget::Quota;

fn ten_a_second() -> Quota {
    Quota::per_second(NonZeroU32::new(10).unwrap())
}

/// Take `want` units of `key` `n` times at once, half through `a` and half through `b`; how many
/// units were granted.
async fn take_at_once(
    a: &Arc<dyn Store>,
    b: &Arc<dyn Store>,
    key: &'static str,
    now: i64,
    want: u32,
    n: usize,
) -> u32 {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let s = Arc::clone(if i % 2 == 0 { a } else { b });
        tasks.spawn(async move { s.take_budget(key, now, ten_a_second(), want).await.unwrap() });
    }
    let mut granted = 0;
    while let Some(r) = tasks.join_next().await {
        granted += r.unwrap().unwrap_or(0);
    }
    granted
}

#[tokio::test]
async fn budgets_grant_no_more_than_burst_and_rate_to_concurrent_takers() {
    for (name, s, _dir, url) in stores_at().await {
        assert_eq!(s.shared(), name == "postgres", "{name}");
        // A second pool on the same database: another node.
        let other = tessera_store::open(&url, &tessera_store::Options::default())
            .await
            .unwrap();
        let now = 1_000_000_000;
        // A whole budget: 10 at once, in leases of up to 3.
        assert_eq!(
            take_at_once(&s, &other, "token:p1", now, 3, 30).await,
            10,
            "{name}"
        );
        assert_eq!(
            s.take_budget("token:p1", now, ten_a_second(), 1)
                .await
                .unwrap(),
            Err(100_000),
            "{name}: one period to wait"
        );
        // One unit a period, however many ask; other keys are apart.
        assert_eq!(
            take_at_once(&s, &other, "token:p1", now + 100_000, 2, 20).await,
            1,
            "{name}"
        );
        assert_eq!(
            take_at_once(&s, &other, "token:p2", now, 1, 20).await,
            10,
            "{name}"
        );
        // A budget whole again is pruned; one still being refilled stays.
        assert_eq!(s.prune_budgets(now + 999_999).await.unwrap(), 0, "{name}");
        assert_eq!(s.prune_budgets(now + 1_100_001).await.unwrap(), 2, "{name}");
        assert_eq!(
            s.take_budget("token:p1", now + 1_100_001, ten_a_second(), 20)
                .await
                .unwrap(),
            Ok(10),
            "{name}: pruned is whole"
        );
    }
}
