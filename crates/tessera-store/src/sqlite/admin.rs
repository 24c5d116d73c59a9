//! SQLite: what the admin API and the CLI read and write (`InventoryStore`, `AdminStore`,
//! `AuditStore`): listings, admin tokens, `Idempotency-Key`s and the audit trail.

use super::*;
use crate::batch;
use tessera_core::audit::TokenIssued;

#[async_trait]
impl InventoryStore for SqliteStore {
    async fn list_partners(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Partner>> {
        sqlx::query("SELECT * FROM partners WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(partner_of)
            .collect()
    }

    async fn list_clients(
        &self,
        partner_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Client>> {
        sqlx::query(
            "SELECT * FROM clients WHERE (?1 IS NULL OR partner_id = ?1) AND id > ?2
             ORDER BY id LIMIT ?3",
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
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        sqlx::query(
            "SELECT * FROM users WHERE (?1 IS NULL OR partner_id = ?1)
               AND (?2 IS NULL OR account_id = ?2) AND (?3 IS NULL OR role = ?3)
               AND (?4 IS NULL OR username = ?4) AND id > ?5
             ORDER BY id LIMIT ?6",
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
    }

    async fn list_grants_of(
        &self,
        of: &GrantsOf,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Grant>> {
        let (sql, key) = match of {
            GrantsOf::User(id) => (
                "SELECT * FROM grants WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?",
                id,
            ),
            GrantsOf::Client(id) => (
                "SELECT * FROM grants WHERE client_id = ? AND id > ? ORDER BY id LIMIT ?",
                id,
            ),
        };
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
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn insert_admin_token(&self, t: &AdminToken, audit: Audit<'_>) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, digest, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.digest.0[..])
        .bind(admin_scopes(&t.scopes))
        .bind(t.created_at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)
    }

    async fn admin_token(&self, digest: &SecretDigest) -> StoreResult<Option<AdminToken>> {
        sqlx::query("SELECT * FROM admin_tokens WHERE digest = ?")
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
        let mut tx = self.gate.begin(&self.pool).await?;
        let revoked = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
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
        let mut tx = self.gate.begin(&self.pool).await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(older_than)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (token_id, key, fingerprint, created_at, request_id)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
            sqlx::query("SELECT * FROM idempotency_keys WHERE token_id = ? AND key = ?")
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
        sqlx::query("UPDATE idempotency_keys SET body = ? WHERE token_id = ? AND key = ?")
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
            "DELETE FROM idempotency_keys WHERE token_id = ? AND key = ? AND status IS NULL
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
impl AuditStore for SqliteStore {
    async fn append_audit(&self, events: &[AuditEvent], tokens: &[TokenIssued]) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        append_audit_in(&mut tx, events).await?;
        for chunk in tokens.chunks(batch::MOST) {
            // The batch's events take the ids after the newest event or batch (this
            // transaction holds the only write lock), and its marker row the last of them, so
            // that the next row appended by any process is numbered after the batch. The
            // marker is dated by the batch's latest event: a 0.1.0 janitor, which knows no
            // batches, deletes it only once the whole batch is past the retention.
            let newest: i64 = sqlx::query_scalar(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM audit_events), 0),
                            COALESCE((SELECT MAX(id) FROM audit_batches), 0))",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
            let ids: Vec<i64> = (newest + 1..=newest + chunk.len() as i64).collect();
            let b = batch::encode(chunk, &ids);
            sqlx::query("INSERT INTO audit_events (id, at, event, detail) VALUES (?, ?, ?, ?)")
                .bind(b.id)
                .bind(b.max_at)
                .bind(batch::MARKER)
                .bind(b.marker_detail())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            sqlx::query(
                "INSERT INTO audit_batches (id, first_id, min_at, max_at, count, records)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(b.id)
            .bind(b.first_id)
            .bind(b.min_at)
            .bind(b.max_at)
            .bind(b.count)
            .bind(&b.records)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            for (kind, value) in batch::keys(chunk) {
                sqlx::query(
                    "INSERT INTO audit_batch_keys (kind, value, batch_id) VALUES (?, ?, ?)",
                )
                .bind(kind)
                .bind(value)
                .bind(b.id)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
        }
        tx.commit().await.map_err(err)
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let rows = crate::rows::audit_listing::<sqlx::Sqlite>("SELECT *", q)
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(audit_of)
            .collect::<StoreResult<Vec<_>>>()?;
        batch::listing(q, rows, |below| async move {
            batch::page_query::<sqlx::Sqlite>(q, below)
                .build()
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(batch_of)
                .collect()
        })
        .await
    }
}

/// Rows in the statement that appends audit events.
const AUDIT_ROWS: usize = 500;

/// Append `events` in the caller's transaction, their ids assigned in order.
pub(super) async fn append_audit_in(
    conn: &mut SqliteConnection,
    events: &[AuditEvent],
) -> StoreResult<()> {
    // A full chunk's statement is prepared once per connection and cached; a shorter one is
    // prepared for its batch only (not persistent): one per batch size would be kept in the
    // connection's statement cache (100 statements of up to 4,000 parameters: tens of MB).
    for chunk in events.chunks(AUDIT_ROWS) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO audit_events \
             (at, event, partner_id, username, client_id, ip, request_id, detail) ",
        );
        insert.push_values(chunk, |mut row, e| {
            row.push_bind(e.at)
                .push_bind(e.event.as_str())
                .push_bind(e.partner_id.as_deref())
                .push_bind(e.username.as_deref())
                .push_bind(e.client_id.as_deref())
                .push_bind(e.ip.as_deref())
                .push_bind(e.request_id.as_deref())
                .push_bind(serde_json::to_string(&e.detail).unwrap_or_default());
        });
        insert
            .build()
            .persistent(chunk.len() == AUDIT_ROWS)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
    }
    // Mark the Idempotency-Key this request reserved, if any: the change commits, and so does
    // the mark, or neither does.
    for e in events {
        if let (true, Some(request_id)) = (
            e.event == tessera_core::audit::Event::AdminChange.as_str(),
            e.request_id.as_deref(),
        ) {
            sqlx::query("UPDATE idempotency_keys SET carried_out = TRUE WHERE request_id = ?")
                .bind(request_id)
                .execute(&mut *conn)
                .await
                .map_err(err)?;
        }
    }
    Ok(())
}
