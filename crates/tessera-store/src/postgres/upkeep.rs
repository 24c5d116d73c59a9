//! PostgreSQL: upkeep (`AttemptStore`, `BudgetStore`, `Janitor`, `ChangeFeed`): lockout buckets,
//! rate budgets, the janitor's purges, and the change feed every node follows.

use super::*;
use tessera_core::budget::{self, Lane, Quota};
use tessera_core::store::BudgetStore;

/// The advisory lock the janitors of all nodes take turns on.
const JANITOR_LOCK: i64 = 0x7465_7373_6a61_6e69;

fn purge_sql(what: Purge) -> &'static str {
    match what {
        Purge::PendingRequests => {
            "DELETE FROM authorization_requests WHERE id IN (
                 SELECT id FROM authorization_requests WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::Codes => {
            "DELETE FROM authorization_codes WHERE digest IN (
                 SELECT digest FROM authorization_codes WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::Sessions => {
            "DELETE FROM sessions WHERE digest IN (
                 SELECT digest FROM sessions WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::Revocations => {
            "DELETE FROM revocations WHERE id IN (
                 SELECT id FROM revocations WHERE until < $1 LIMIT $2)"
        }
        Purge::Families => {
            "DELETE FROM refresh_families WHERE id IN (
                 SELECT id FROM refresh_families WHERE issued_at < $1 LIMIT $2)"
        }
        // A batch's marker row goes with its batch (`purge`), never before it.
        Purge::AuditEvents => {
            "DELETE FROM audit_events WHERE id IN (
                 SELECT id FROM audit_events
                  WHERE at < $1 AND event <> 'token.issued.batch' LIMIT $2)"
        }
        Purge::RefreshTokens => {
            "DELETE FROM refresh_tokens
             WHERE digest IN (SELECT digest FROM refresh_tokens WHERE expires_at < $1 LIMIT $3)
                OR digest IN (SELECT digest FROM refresh_tokens WHERE revoked_at < $2 LIMIT $3)"
        }
    }
}

#[async_trait]
impl AttemptStore for PgStore {
    async fn reserve_attempt(
        &self,
        key: &[u8; 32],
        _node_now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Result<(), u64>> {
        self.timed(async move {
            // The key's row, made if missing and locked either way in one statement (a prune
            // between two statements would leave nothing to lock): every node's reservations of
            // one username queue on that row, so their total never exceeds the allowance. In
            // the database's clock, not the node's: a node whose clock ran behind would write
            // buckets that look long drained to the others (an attack with faketime got every
            // guess through), and one ahead would stretch every lockout.
            let mut tx = self.pool.begin().await.map_err(err)?;
            let row = sqlx::query(
                "INSERT INTO login_attempts AS a (key, level, at)
                 VALUES ($1, 0, extract(epoch FROM clock_timestamp())::bigint)
                 ON CONFLICT (key) DO UPDATE SET level = a.level
                 RETURNING level, at, extract(epoch FROM clock_timestamp())::bigint AS now",
            )
            .bind(&key[..])
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
            let bucket = Bucket {
                level: row.try_get("level").map_err(err)?,
                at: row.try_get("at").map_err(err)?,
            };
            let now: i64 = row.try_get("now").map_err(err)?;
            let next = match lockout::reserve(Some(bucket), now, policy) {
                Ok(next) => next,
                Err(wait) => return Ok(Err(wait)),
            };
            sqlx::query("UPDATE login_attempts SET level = $2, at = $3 WHERE key = $1")
                .bind(&key[..])
                .bind(next.level)
                .bind(next.at)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn clear_attempts(&self, key: &[u8; 32]) -> StoreResult<()> {
        self.timed(async move {
            sqlx::query("DELETE FROM login_attempts WHERE key = $1")
                .bind(&key[..])
                .execute(&self.pool)
                .await
                .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn prune_attempts(&self, _node_now: i64, policy: &LockoutPolicy) -> StoreResult<u64> {
        self.timed(async move {
            let now: i64 =
                sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::bigint")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(err)?;
            let drained = sqlx::query("DELETE FROM login_attempts WHERE at < $1")
                .bind(lockout::drained_before(now, policy))
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected();
            let max = i64::try_from(policy.max_entries).unwrap_or(i64::MAX);
            let oldest = sqlx::query(
                "DELETE FROM login_attempts WHERE key IN (
                     SELECT key FROM login_attempts ORDER BY at
                     LIMIT GREATEST((SELECT count(*) FROM login_attempts) - $1, 0))",
            )
            .bind(max)
            .execute(&self.pool)
            .await
            .map_err(err)?
            .rows_affected();
            Ok(drained + oldest)
        })
        .await
    }
}

#[async_trait]
impl BudgetStore for PgStore {
    fn shared(&self) -> bool {
        true
    }

    async fn take_budget(
        &self,
        key: &str,
        quota: Quota,
        want: u32,
        lane: Lane,
    ) -> StoreResult<Result<u32, i64>> {
        let pool = match lane {
            Lane::Callers => &self.budgets,
            Lane::Requesters => &self.requester_budgets,
        };
        self.timed(async move {
            // The key's row, made if missing and locked either way, in one statement (the
            // insert-or-update is atomic even against a concurrent prune of the row), with the
            // database's time: every node's takes of one budget queue on that row and count in
            // one clock.
            let mut tx = pool.begin().await.map_err(err)?;
            let (tat, now): (i64, i64) = sqlx::query_as(
                "INSERT INTO rate_budgets AS b (key, tat) VALUES ($1, 0)
                 ON CONFLICT (key) DO UPDATE SET tat = b.tat
                 RETURNING tat, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint",
            )
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
            let (units, tat) = match budget::take(Some(tat), now, quota, want) {
                Ok(taken) => taken,
                Err(wait) => return Ok(Err(wait)),
            };
            sqlx::query("UPDATE rate_budgets SET tat = $2 WHERE key = $1")
                .bind(key)
                .bind(tat)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(Ok(units))
        })
        .await
    }

    async fn prune_budgets(&self, batch: u32) -> StoreResult<u64> {
        self.timed(async move {
            Ok(sqlx::query(
                "DELETE FROM rate_budgets WHERE key IN (
                     SELECT key FROM rate_budgets
                      WHERE tat < (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
                      LIMIT $1 FOR UPDATE SKIP LOCKED)",
            )
            .bind(i64::from(batch))
            .execute(&self.pool)
            .await
            .map_err(err)?
            .rows_affected())
        })
        .await
    }
}

#[async_trait]
impl Janitor for PgStore {
    async fn purge(&self, what: Purge, now: i64, grace: i64, batch: u32) -> StoreResult<u64> {
        let sql = purge_sql(what);
        let (before, revoked_before) = what.cutoffs(now, grace);
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            // One node at a time: whoever holds the janitor's lock deletes, the others skip.
            let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(JANITOR_LOCK)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            if !mine {
                return Ok(0);
            }
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
                // Batches whose latest event is past the retention, their keys and their
                // marker rows; counted by the batches deleted.
                let purged: i64 = sqlx::query_scalar(
                    "WITH old AS (
                         DELETE FROM audit_batches WHERE id IN (
                             SELECT id FROM audit_batches WHERE max_at < $1 LIMIT $2)
                         RETURNING id),
                     keys AS (DELETE FROM audit_batch_keys WHERE batch_id IN (SELECT id FROM old)),
                     markers AS (DELETE FROM audit_events WHERE id IN (SELECT id FROM old))
                     SELECT count(*) FROM old",
                )
                .bind(before)
                .bind(i64::from(batch))
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
                batches = purged as u64;
            }
            tx.commit().await.map_err(err)?;
            Ok(n + batches)
        })
        .await
    }
}

#[async_trait]
impl ChangeFeed for PgStore {
    async fn latest_change(&self) -> StoreResult<i64> {
        self.timed(async move {
            let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM changes")
                .fetch_one(&self.pool)
                .await
                .map_err(err)?;
            Ok(seq.unwrap_or(0))
        })
        .await
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<(i64, Change)>> {
        self.timed(async move {
            let rows = sqlx::query(
                "SELECT seq, kind, key FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
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
        })
        .await
    }

    async fn prune_changes(&self, before: i64) -> StoreResult<u64> {
        self.timed(async move {
            Ok(sqlx::query("DELETE FROM changes WHERE at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected())
        })
        .await
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        let signal = self.signal.get_or_init(|| {
            let signal = Arc::new(tokio::sync::Notify::new());
            tokio::spawn(listen(self.listen_options.clone(), Arc::clone(&signal)));
            signal
        });
        Some(Arc::clone(signal))
    }
}
