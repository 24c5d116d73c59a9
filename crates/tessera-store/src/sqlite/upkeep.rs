//! SQLite: upkeep (`AttemptStore`, `BudgetStore`, `Janitor`, `ChangeFeed`): lockout buckets, rate
//! budgets, the janitor's purges, and the change feed every node follows.

use super::*;
use tessera_core::budget::{self, Lane, Quota};
use tessera_core::store::BudgetStore;

#[async_trait]
impl AttemptStore for SqliteStore {
    async fn reserve_attempt(
        &self,
        key: &[u8; 32],
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Result<(), u64>> {
        // The write lock, taken first, makes the read and the write one step for every caller.
        let mut tx = self.gate.begin(&self.pool).await?;
        let bucket = sqlx::query("SELECT level, at FROM login_attempts WHERE key = ?")
            .bind(&key[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .map(|r| {
                Ok::<_, StoreError>(Bucket {
                    level: r.try_get("level").map_err(err)?,
                    at: r.try_get("at").map_err(err)?,
                })
            })
            .transpose()?;
        let next = match lockout::reserve(bucket, now, policy) {
            Ok(next) => next,
            Err(wait) => return Ok(Err(wait)),
        };
        sqlx::query(
            "INSERT INTO login_attempts (key, level, at) VALUES (?, ?, ?)
             ON CONFLICT (key) DO UPDATE SET level = excluded.level, at = excluded.at",
        )
        .bind(&key[..])
        .bind(next.level)
        .bind(next.at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(Ok(()))
    }

    async fn clear_attempts(&self, key: &[u8; 32]) -> StoreResult<()> {
        sqlx::query("DELETE FROM login_attempts WHERE key = ?")
            .bind(&key[..])
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn prune_attempts(&self, now: i64, policy: &LockoutPolicy) -> StoreResult<u64> {
        let drained = sqlx::query("DELETE FROM login_attempts WHERE at < ?")
            .bind(lockout::drained_before(now, policy))
            .execute(&self.pool)
            .await
            .map_err(err)?
            .rows_affected();
        let max = i64::try_from(policy.max_entries).unwrap_or(i64::MAX);
        let oldest = sqlx::query(
            "DELETE FROM login_attempts WHERE key IN (
                 SELECT key FROM login_attempts ORDER BY at
                 LIMIT max((SELECT count(*) FROM login_attempts) - ?, 0))",
        )
        .bind(max)
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected();
        Ok(drained + oldest)
    }
}

#[async_trait]
impl BudgetStore for SqliteStore {
    fn shared(&self) -> bool {
        false
    }

    /// One node: the lane makes no difference.
    async fn take_budget(
        &self,
        key: &str,
        quota: Quota,
        want: u32,
        _lane: Lane,
    ) -> StoreResult<Result<u32, i64>> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_budgets WHERE key = ?")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
        // One node: its own clock, read under the write lock.
        let (units, tat) = match budget::take(tat, budget::unix_micros(), quota, want) {
            Ok(taken) => taken,
            Err(wait) => return Ok(Err(wait)),
        };
        sqlx::query(
            "INSERT INTO rate_budgets (key, tat) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET tat = excluded.tat",
        )
        .bind(key)
        .bind(tat)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(Ok(units))
    }

    async fn prune_budgets(&self, batch: u32) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM rate_budgets WHERE key IN (
                 SELECT key FROM rate_budgets WHERE tat < ? LIMIT ?)",
        )
        .bind(budget::unix_micros())
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected())
    }
}

#[async_trait]
impl Janitor for SqliteStore {
    async fn purge(&self, what: Purge, now: i64, grace: i64, batch: u32) -> StoreResult<u64> {
        let sql = purge_sql(what);
        let (before, revoked_before) = what.cutoffs(now, grace);
        let mut tx = self.gate.begin(&self.pool).await?;
        let mut query = sqlx::query(sql).bind(before);
        if what == Purge::RefreshTokens {
            query = query.bind(revoked_before);
        }
        let n = query
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
        let mut batches = 0;
        if what == Purge::AuditEvents {
            // Batches whose latest event is past the retention, their keys and their marker
            // rows (the same batches: the same order and limit in one transaction).
            for sql in [
                "DELETE FROM audit_batch_keys WHERE batch_id IN (
                     SELECT id FROM audit_batches WHERE max_at < ?1 ORDER BY id LIMIT ?2)",
                "DELETE FROM audit_events WHERE id IN (
                     SELECT id FROM audit_batches WHERE max_at < ?1 ORDER BY id LIMIT ?2)",
                "DELETE FROM audit_batches WHERE id IN (
                     SELECT id FROM audit_batches WHERE max_at < ?1 ORDER BY id LIMIT ?2)",
            ] {
                batches = sqlx::query(sql)
                    .bind(before)
                    .bind(i64::from(batch))
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
            }
        }
        tx.commit().await.map_err(err)?;
        Ok(n + batches)
    }
}

#[async_trait]
impl ChangeFeed for SqliteStore {
    async fn latest_change(&self) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM changes")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        Ok(seq.unwrap_or(0))
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<(i64, Change)>> {
        let rows =
            sqlx::query("SELECT seq, kind, key FROM changes WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.try_get("seq").map_err(err)?;
            let kind: String = r.try_get("kind").map_err(err)?;
            let key: String = r.try_get("key").map_err(err)?;
            match Change::decode(&kind, &key) {
                Some(c) => out.push((seq, c)),
                None => tracing::warn!(seq, kind, "skipping an unknown change kind"),
            }
        }
        Ok(out)
    }

    async fn prune_changes(&self, before: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM changes WHERE at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err)?
            .rows_affected())
    }
}
