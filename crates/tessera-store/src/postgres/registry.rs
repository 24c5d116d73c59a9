//! PostgreSQL: the registry (`PartnerStore`, `AccountStore`, `ClientStore`, `UserStore`,
//! `ScopeStore`): partners, their accounts, clients and users, and scopes.

use super::*;

#[async_trait]
impl PartnerStore for PgStore {
    async fn revoke_partner_token(
        &self,
        digest: &SecretDigest,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<Option<String>> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let partner: Option<String> = sqlx::query_scalar(
                "UPDATE partner_tokens SET revoked_at = $1 WHERE digest = $2 AND revoked_at IS NULL RETURNING partner_id",
            )
            .bind(now)
            .bind(&digest.0[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            if let Some(id) = &partner {
                emit(&mut tx, &Change::PartnerToken(id.clone())).await?;
                append_audit_in(&mut tx, audit).await?;
            }
            tx.commit().await.map_err(err)?;
            Ok(partner)
        })
        .await
    }

    async fn revoke_partner_tokens(
        &self,
        partner_id: &str,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<u64> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let n = sqlx::query("UPDATE partner_tokens SET revoked_at = $1 WHERE partner_id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(partner_id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if n > 0 {
                emit(&mut tx, &Change::PartnerToken(partner_id.to_string())).await?;
                append_audit_in(&mut tx, audit).await?;
            }
            tx.commit().await.map_err(err)?;
            Ok(n)
        })
        .await
    }

    async fn insert_partner(&self, p: &Partner, audit: Audit<'_>) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            sqlx::query(
                "INSERT INTO partners (id, name, email, org_code, status, scopes, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&p.id)
            .bind(&p.name)
            .bind(&p.email)
            .bind(&p.org_code)
            .bind(p.status.as_str())
            .bind(p.scopes.to_claim())
            .bind(&p.password_hash.0)
            .bind(p.created_at)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn partner_by_id(&self, id: &str) -> StoreResult<Option<Partner>> {
        self.timed(async move {
            self.by_key("SELECT * FROM partners WHERE id = $1", id, partner_of)
                .await
        })
        .await
    }

    async fn partner_by_email(&self, email: &str) -> StoreResult<Option<Partner>> {
        self.timed(async move {
            self.by_key("SELECT * FROM partners WHERE email = $1", email, partner_of)
                .await
        })
        .await
    }

    async fn set_partner_status(
        &self,
        id: &str,
        status: PartnerStatus,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let n = sqlx::query("UPDATE partners SET status = $1 WHERE id = $2")
                .bind(status.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound("partner"));
            }
            emit(&mut tx, &Change::Partner(id.to_string())).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn partner_ids_with_status(&self, status: PartnerStatus) -> StoreResult<Vec<String>> {
        self.timed(async move {
            sqlx::query_scalar("SELECT id FROM partners WHERE status = $1")
                .bind(status.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(err)
        })
        .await
    }

    async fn set_partner_password(
        &self,
        id: &str,
        hash: &PasswordHash,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let n = sqlx::query("UPDATE partners SET password_hash = $1 WHERE id = $2")
                .bind(&hash.0)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound("partner"));
            }
            emit(&mut tx, &Change::Partner(id.to_string())).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn insert_partner_token(
        &self,
        partner_id: &str,
        digest: &SecretDigest,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            if !partner_exists(&mut tx, partner_id).await? {
                return Err(StoreError::NotFound("partner"));
            }
            sqlx::query(
                "INSERT INTO partner_tokens (digest, partner_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(&digest.0[..])
            .bind(partner_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            emit(&mut tx, &Change::PartnerToken(partner_id.to_string())).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn partner_by_token(&self, digest: &SecretDigest) -> StoreResult<Option<String>> {
        self.timed(async move {
            sqlx::query_scalar(
                "SELECT partner_id FROM partner_tokens WHERE digest = $1 AND revoked_at IS NULL",
            )
            .bind(&digest.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(err)
        })
        .await
    }
}

async fn insert_account_in<'c, E>(conn: E, a: &Account) -> StoreResult<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    sqlx::query(
        "INSERT INTO accounts (id, partner_id, name, external_id, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&a.id)
    .bind(&a.partner_id)
    .bind(&a.name)
    .bind(&a.external_id)
    .bind(a.created_at)
    .execute(conn)
    .await
    .map_err(err)?;
    Ok(())
}

#[async_trait]
impl AccountStore for PgStore {
    async fn insert_account(&self, a: &Account) -> StoreResult<()> {
        self.timed(insert_account_in(&self.pool, a)).await
    }

    async fn account_by_id(&self, id: &str) -> StoreResult<Option<Account>> {
        self.timed(async move {
            self.by_key("SELECT * FROM accounts WHERE id = $1", id, account_of)
                .await
        })
        .await
    }

    async fn list_accounts(
        &self,
        partner_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Account>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM accounts WHERE partner_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            )
            .bind(partner_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(account_of)
            .collect()
        })
        .await
    }
}

#[async_trait]
impl ClientStore for PgStore {
    async fn rotate_client_secret(
        &self,
        id: &str,
        digest: &SecretDigest,
        previous_until: Option<i64>,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let n = sqlx::query(
                "UPDATE clients SET previous_secret_digest = CASE WHEN $1::BIGINT IS NULL THEN NULL ELSE secret_digest END,
                     previous_secret_until = $1, secret_digest = $2 WHERE id = $3",
            )
            .bind(previous_until)
            .bind(&digest.0[..])
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound("client"));
            }
            emit(&mut tx, &Change::Client(id.to_string())).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn set_client_disabled(
        &self,
        id: &str,
        disabled: bool,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let n = sqlx::query("UPDATE clients SET disabled = $1 WHERE id = $2")
                .bind(i64::from(disabled))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound("client"));
            }
            emit(&mut tx, &Change::Client(id.to_string())).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn disabled_client_ids(&self) -> StoreResult<Vec<String>> {
        self.timed(async move {
            sqlx::query_scalar("SELECT id FROM clients WHERE disabled <> 0")
                .fetch_all(&self.pool)
                .await
                .map_err(err)
        })
        .await
    }

    async fn insert_client(&self, c: &Client, audit: Audit<'_>) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            if !partner_exists(&mut tx, &c.partner_id).await? {
                return Err(StoreError::NotFound("partner"));
            }
            let grant_types: Vec<&str> = c
                .grant_types
                .iter()
                .map(|g| crate::rows::stored_grant_type(*g))
                .collect();
            sqlx::query(
                "INSERT INTO clients (id, partner_id, name, secret_digest, grant_types, scopes,
                                      redirect_uris, frame_origins, dev, pkce_plain,
                                  allow_registration, created_at, require_par)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&c.id)
            .bind(&c.partner_id)
            .bind(&c.name)
            .bind(&c.secret_digest.0[..])
            .bind(serde_json::to_string(&grant_types).expect("strings serialize"))
            .bind(c.scopes.to_claim())
            .bind(serde_json::to_string(&c.redirect_uris).expect("strings serialize"))
            .bind(serde_json::to_string(&c.frame_origins).expect("strings serialize"))
            .bind(i64::from(c.dev))
            .bind(i64::from(c.pkce_plain))
            .bind(i64::from(c.allow_registration))
            .bind(c.created_at)
            .bind(i64::from(c.require_par))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            emit(&mut tx, &Change::Client(c.id.clone())).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn client_by_id(&self, id: &str) -> StoreResult<Option<Client>> {
        self.timed(async move {
            self.by_key("SELECT * FROM clients WHERE id = $1", id, client_of)
                .await
        })
        .await
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn set_user_password(
        &self,
        partner_id: &str,
        username: &str,
        hash: &PasswordHash,
        audit: Audit<'_>,
    ) -> StoreResult<String> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let id: Option<String> = sqlx::query_scalar(
                "UPDATE users SET password_hash = $1 WHERE partner_id = $2 AND username = $3 RETURNING id",
            )
            .bind(&hash.0)
            .bind(partner_id)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            let Some(id) = id else {
                return Err(StoreError::NotFound("user"));
            };
            end_sessions_in(&mut tx, &id).await?;
            emit(
                &mut tx,
                &Change::User {
                    partner_id: partner_id.to_string(),
                    username: username.to_string(),
                },
            )
            .await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)?;
            Ok(id)
        })
        .await
    }

    async fn insert_user(&self, u: &User, audit: Audit<'_>) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            insert_user(&mut *tx, u).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn insert_member(&self, a: &Account, u: &User) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            insert_account_in(&mut *tx, a).await?;
            insert_user(&mut *tx, u).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.timed(async move {
            self.by_key("SELECT * FROM users WHERE id = $1", id, user_of)
                .await
        })
        .await
    }

    async fn upsert_customer(&self, u: &User) -> StoreResult<(User, bool)> {
        // Two first sign-ups of one username can both miss the SELECT; the loser's INSERT hits
        // the unique constraint and, on retry, finds the winner's row.
        match self.upsert_customer_once(u).await {
            Err(StoreError::Conflict(_)) => self.upsert_customer_once(u).await,
            other => other,
        }
    }

    async fn user_by_username(
        &self,
        partner_id: &str,
        username: &str,
    ) -> StoreResult<Option<User>> {
        self.timed(async move {
            sqlx::query("SELECT * FROM users WHERE partner_id = $1 AND username = $2")
                .bind(partner_id)
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?
                .as_ref()
                .map(user_of)
                .transpose()
        })
        .await
    }
}

#[async_trait]
impl ScopeStore for PgStore {
    async fn add_scopes(
        &self,
        names: &[String],
        description: Option<&str>,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            for name in names {
                sqlx::query(
                    "INSERT INTO scopes (name, description) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET description = coalesce(excluded.description, scopes.description)",
                )
                .bind(name)
                .bind(description)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
            emit(&mut tx, &Change::Scopes).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn scope_descriptions(&self) -> StoreResult<Vec<(String, Option<String>)>> {
        self.timed(async move {
            let rows = sqlx::query("SELECT name, description FROM scopes ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("name").map_err(err)?,
                        r.try_get("description").map_err(err)?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn list_scopes(&self) -> StoreResult<Vec<String>> {
        self.timed(async move {
            sqlx::query_scalar("SELECT name FROM scopes ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(err)
        })
        .await
    }
}
