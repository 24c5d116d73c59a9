//! SQLite: signing keys (`KeyStore`): rotation, schedule and revocation.

use super::*;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(key_of)
            .collect()
    }

    async fn rotate_keys(&self, key: &StoredKey, now: i64, audit: Audit<'_>) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        activate_in(&mut tx, key, now).await?;
        emit(&mut tx, &Change::Keys).await?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)
    }

    async fn schedule_key(&self, key: &StoredKey, now: i64) -> StoreResult<bool> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM signing_keys WHERE revoked_at IS NULL AND retired_at IS NULL
               AND COALESCE(activates_at, created_at) > ? AND purpose = ?",
        )
        .bind(now)
        .bind(key.purpose.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(err)?;
        if pending > 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, created_at, activates_at,
                 purpose)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(key.public_jwk.to_string())
        .bind(&key.private_sealed)
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.purpose.as_str())
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        emit(&mut tx, &Change::Keys).await?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn revoke_key(
        &self,
        kid: &str,
        replacement: Option<&StoredKey>,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let n = sqlx::query(
            "UPDATE signing_keys SET revoked_at = ? WHERE kid = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(kid)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("key"));
        }
        if let Some(key) = replacement {
            activate_in(&mut tx, key, now).await?;
        }
        emit(&mut tx, &Change::Keys).await?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)
    }
}

/// Make `key` the active key of its lane from `now`, in the caller's transaction: the lane's
/// keys that sign now or signed before retire (a pending key still activates later).
async fn activate_in(conn: &mut SqliteConnection, key: &StoredKey, now: i64) -> StoreResult<()> {
    // Keys that sign now or signed before stop; a pending key still activates later.
    sqlx::query(
        "UPDATE signing_keys SET retired_at = ?1
         WHERE retired_at IS NULL AND COALESCE(activates_at, created_at) <= ?1
           AND purpose = ?2",
    )
    .bind(now)
    .bind(key.purpose.as_str())
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, created_at, activates_at,
             purpose)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&key.kid)
    .bind(key.alg.as_str())
    .bind(key.public_jwk.to_string())
    .bind(&key.private_sealed)
    .bind(key.created_at)
    // It signs from the rotation, whenever it was generated.
    .bind(now)
    .bind(key.purpose.as_str())
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    Ok(())
}
