//! PostgreSQL: what the admin API and the CLI read and write (`InventoryStore`, `AdminStore`,
//! `AuditStore`): listings, admin tokens, `Idempotency-Key`s and the audit trail.

use super::*;
use crate::batch;
use tessera_core::audit::TokenIssued;

#[async_trait]
impl InventoryStore for PgStore {
    async fn list_partners(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Partner>> {
        self.timed(async move {
            sqlx::query("SELECT * FROM partners WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(partner_of)
                .collect()
        })
        .await
    }

    async fn list_clients(
        &self,
        partner_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Client>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM clients WHERE ($1::text IS NULL OR partner_id = $1) AND id > $2
                 ORDER BY id LIMIT $3",
            )
            .bind(partner_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(client_of)
            .collect()
        })
        .await
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM users WHERE ($1::text IS NULL OR partner_id = $1)
                   AND ($2::text IS NULL OR account_id = $2) AND ($3::text IS NULL OR role = $3)
                   AND ($4::text IS NULL OR username = $4) AND id > $5
                 ORDER BY id LIMIT $6",
            )
            .bind(filter.partner_id.as_deref())
            .bind(filter.account_id.as_deref())
            .bind(filter.role.map(Role::as_str))
            .bind(filter.username.as_deref())
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(user_of)
            .collect()
        })
        .await
    }

    async fn list_grants_of(
        &self,
        of: &GrantsOf,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Grant>> {
        let (sql, key) = match of {
            GrantsOf::User(id) => (
                "SELECT * FROM grants WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                id,
            ),
            GrantsOf::Client(id) => (
                "SELECT * FROM grants WHERE client_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                id,
            ),
        };
        self.timed(async move {
            sqlx::query(sql)
                .bind(key)
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(grant_of)
                .collect()
        })
        .await
    }
}

#[async_trait]
impl AdminStore for PgStore {
    async fn insert_admin_token(&self, t: &AdminToken, audit: Audit<'_>) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, digest, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.digest.0[..])
        .bind(admin_scopes_pg(&t.scopes))
        .bind(t.created_at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)
    }

    async fn admin_token(&self, digest: &SecretDigest) -> StoreResult<Option<AdminToken>> {
        sqlx::query("SELECT * FROM admin_tokens WHERE digest = $1")
            .bind(&digest.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .as_ref()
            .map(admin_token_of)
            .transpose()
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>> {
        sqlx::query("SELECT * FROM admin_tokens ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(admin_token_of)
            .collect()
    }

    async fn revoke_admin_token(&self, id: &str, now: i64, audit: Audit<'_>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        let revoked = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected()
            == 1;
        // Nothing changed, nothing to record: the caller answers "not found".
        if revoked {
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)?;
        }
        Ok(revoked)
    }

    async fn reserve_idempotency_key(
        &self,
        token_id: &str,
        key: &str,
        request_id: Option<&str>,
        fingerprint: &SecretDigest,
        now: i64,
        older_than: i64,
    ) -> StoreResult<Option<IdempotentRecord>> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(older_than)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (token_id, key, fingerprint, created_at, request_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(token_id)
        .bind(key)
        .bind(&fingerprint.0[..])
        .bind(now)
        .bind(request_id)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        let held = if inserted == 1 {
            None
        } else {
            sqlx::query("SELECT * FROM idempotency_keys WHERE token_id = $1 AND key = $2")
                .bind(token_id)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?
                .as_ref()
                .map(idempotent_of)
                .transpose()?
        };
        tx.commit().await.map_err(err)?;
        Ok(held)
    }

    async fn finish_idempotency_key(
        &self,
        token_id: &str,
        key: &str,
        answer: &[u8],
    ) -> StoreResult<()> {
        sqlx::query("UPDATE idempotency_keys SET body = $1 WHERE token_id = $2 AND key = $3")
            .bind(answer)
            .bind(token_id)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn release_idempotency_key(&self, token_id: &str, key: &str) -> StoreResult<bool> {
        // On PostgreSQL a commit still in flight holds the row's lock (its change marked the
        // row), so the DELETE waits and then sees `carried_out`; on SQLite the write lock
        // orders it after that commit.
        let freed = sqlx::query(
            "DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND status IS NULL
             AND body IS NULL AND NOT carried_out",
        )
        .bind(token_id)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected();
        Ok(freed == 1)
    }
}

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, events: &[AuditEvent], tokens: &[TokenIssued]) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            append_audit_in(&mut tx, events).await?;
            for chunk in tokens.chunks(batch::MOST) {
                // Ids from the audit trail's sequence, one per event (other nodes draw from it
                // meanwhile, so they need not be consecutive); the marker row takes the last.
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT nextval(pg_get_serial_sequence('audit_events', 'id'))
                       FROM generate_series(1, $1) ORDER BY 1",
                )
                .bind(chunk.len() as i64)
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?;
                let b = batch::encode(chunk, &ids);
                let (kinds, values): (Vec<&str>, Vec<&str>) = batch::keys(chunk).into_iter().unzip();
                // The marker row is dated by the batch's latest event: a 0.1.0 janitor, which
                // knows no batches, deletes it only once the whole batch is past the retention.
                sqlx::query(
                    "WITH marker AS (
                         INSERT INTO audit_events (id, at, event, detail)
                         VALUES ($1, $4, $7, $8)),
                     keys AS (
                         INSERT INTO audit_batch_keys (kind, value, batch_id)
                         SELECT kind, value, $1 FROM UNNEST($9::TEXT[], $10::TEXT[]) AS k(kind, value))
                     INSERT INTO audit_batches (id, first_id, min_at, max_at, count, records)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(b.id)
                .bind(b.first_id)
                .bind(b.min_at)
                .bind(b.max_at)
                .bind(b.count)
                .bind(&b.records)
                .bind(batch::MARKER)
                .bind(b.marker_detail())
                .bind(kinds)
                .bind(values)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.timed(async move {
            let rows = crate::rows::audit_listing::<sqlx::Postgres>("SELECT *", q)
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(audit_of)
                .collect::<StoreResult<Vec<_>>>()?;
            batch::listing(q, rows, |below| async move {
                batch::page_query::<sqlx::Postgres>(q, below)
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(err)?
                    .iter()
                    .map(batch_of)
                    .collect()
            })
            .await
        })
        .await
    }
}

/// Append `events` in the caller's transaction, their ids assigned in order.
pub(super) async fn append_audit_in(
    conn: &mut PgConnection,
    events: &[AuditEvent],
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    // One statement for any number of rows (arrays, unnested in order), prepared once: a
    // statement per batch size would be prepared anew for almost every batch and cached.
    let column =
        |f: fn(&AuditEvent) -> Option<&str>| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO audit_events \
         (at, event, partner_id, username, client_id, ip, request_id, detail) \
         SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
                              $6::TEXT[], $7::TEXT[], $8::TEXT[])",
    )
    .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
    .bind(column(|e| Some(e.event.as_str())))
    .bind(column(|e| e.partner_id.as_deref()))
    .bind(column(|e| e.username.as_deref()))
    .bind(column(|e| e.client_id.as_deref()))
    .bind(column(|e| e.ip.as_deref()))
    .bind(column(|e| e.request_id.as_deref()))
    .bind(
        events
            .iter()
            .map(|e| serde_json::to_string(&e.detail).unwrap_or_default())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    // Mark the Idempotency-Key this request reserved, if any: the change commits, and so does
    // the mark, or neither does.
    for e in events {
        if let (true, Some(request_id)) = (
            e.event == tessera_core::audit::Event::AdminChange.as_str(),
            e.request_id.as_deref(),
        ) {
            sqlx::query("UPDATE idempotency_keys SET carried_out = TRUE WHERE request_id = $1")
                .bind(request_id)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
        }
    }
    Ok(())
}
