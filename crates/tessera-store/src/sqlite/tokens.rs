//! SQLite: refresh-token families (`TokenStore`): start, rotation with its retry grace, reuse
//! detection and revocation.

use super::*;

#[async_trait]
impl TokenStore for SqliteStore {
    async fn start_family(
        &self,
        family: &RefreshFamily,
        first: Option<&RefreshToken>,
    ) -> StoreResult<()> {
        self.write(|reply| Write::Start(family.clone(), first.cloned().map(Box::new), reply))
            .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        owner: &TokenOwner,
        successor: &Successor,
        now: i64,
    ) -> StoreResult<Rotation> {
        self.write(|reply| Write::Rotate {
            presented: *presented,
            owner: owner.clone(),
            successor: successor.clone(),
            now,
            reply,
        })
        .await
    }

    async fn refresh_token(&self, digest: &SecretDigest) -> StoreResult<Option<RefreshToken>> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE digest = ?")
            .bind(&digest.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .as_ref()
            .map(refresh_of)
            .transpose()
    }

    async fn revoke_family(&self, family_id: &str, until: i64, now: i64) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO refresh_families (id, grant_id, issued_at, revoked_at) VALUES (?1, NULL, ?2, ?2)
             ON CONFLICT (id) DO UPDATE SET revoked_at = coalesce(refresh_families.revoked_at, excluded.revoked_at)",
        )
        .bind(family_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        record_revocation(&mut tx, family_id, until).await?;
        tx.commit().await.map_err(err)
    }

    async fn revoke_jti(&self, jti: &str, until: i64) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        record_revocation(&mut tx, jti, until).await?;
        tx.commit().await.map_err(err)
    }

    async fn active_revocations(&self, now: i64) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT id, until FROM revocations WHERE until > ?")
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id").map_err(err)?,
                    r.try_get("until").map_err(err)?,
                ))
            })
            .collect()
    }
}
