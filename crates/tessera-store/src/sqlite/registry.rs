//! SQLite: the registry (`PartnerStore`, `AccountStore`, `ClientStore`, `UserStore`, `ScopeStore`):
//! partners, their accounts, clients and users, and scopes.

use super::*;

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn revoke_partner_token(
        &self,
        digest: &SecretDigest,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let partner: Option<String> = sqlx::query_scalar(
            "UPDATE partner_tokens SET revoked_at = ? WHERE digest = ? AND revoked_at IS NULL RETURNING partner_id",
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
    }

    async fn revoke_partner_tokens(
        &self,
        partner_id: &str,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<u64> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let n = sqlx::query(
            "UPDATE partner_tokens SET revoked_at = ? WHERE partner_id = ? AND revoked_at IS NULL",
        )
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
    }

    async fn insert_partner(&self, p: &Partner, audit: Audit<'_>) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO partners (id, name, email, org_code, status, scopes, password_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    }

    async fn partner_by_id(&self, id: &str) -> StoreResult<Option<Partner>> {
        self.by_key("SELECT * FROM partners WHERE id = ?", id, partner_of)
            .await
    }

    async fn partner_by_email(&self, email: &str) -> StoreResult<Option<Partner>> {
        self.by_key("SELECT * FROM partners WHERE email = ?", email, partner_of)
            .await
    }

    async fn set_partner_status(
        &self,
        id: &str,
        status: PartnerStatus,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let n = sqlx::query("UPDATE partners SET status = ? WHERE id = ?")
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
    }

    async fn partner_ids_with_status(&self, status: PartnerStatus) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM partners WHERE status = ?")
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }

    async fn set_partner_password(
        &self,
        id: &str,
        hash: &PasswordHash,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let n = sqlx::query("UPDATE partners SET password_hash = ? WHERE id = ?")
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
    }

    async fn insert_partner_token(
        &self,
        partner_id: &str,
        digest: &SecretDigest,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        if !partner_exists(&mut tx, partner_id).await? {
            return Err(StoreError::NotFound("partner"));
        }
        sqlx::query("INSERT INTO partner_tokens (digest, partner_id, created_at) VALUES (?, ?, ?)")
            .bind(&digest.0[..])
            .bind(partner_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        emit(&mut tx, &Change::PartnerToken(partner_id.to_string())).await?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)
    }

    async fn partner_by_token(&self, digest: &SecretDigest) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT partner_id FROM partner_tokens WHERE digest = ? AND revoked_at IS NULL",
        )
        .bind(&digest.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(err)
    }
}

async fn insert_account_in<'c, E>(conn: E, a: &Account) -> StoreResult<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO accounts (id, partner_id, name, external_id, created_at) VALUES (?, ?, ?, ?, ?)",
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
impl AccountStore for SqliteStore {
    async fn insert_account(&self, a: &Account) -> StoreResult<()> {
        insert_account_in(&self.pool, a).await
    }

    async fn account_by_id(&self, id: &str) -> StoreResult<Option<Account>> {
        self.by_key("SELECT * FROM accounts WHERE id = ?", id, account_of)
            .await
    }

    async fn list_accounts(
        &self,
        partner_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Account>> {
        sqlx::query("SELECT * FROM accounts WHERE partner_id = ? AND id > ? ORDER BY id LIMIT ?")
            .bind(partner_id)
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(account_of)
            .collect()
    }
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn rotate_client_secret(
        &self,
        id: &str,
        digest: &SecretDigest,
        previous_until: Option<i64>,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let n = sqlx::query(
            "UPDATE clients SET previous_secret_digest = CASE WHEN ?1 IS NULL THEN NULL ELSE secret_digest END,
                 previous_secret_until = ?1, secret_digest = ?2 WHERE id = ?3",
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
    }

    async fn set_client_disabled(
        &self,
        id: &str,
        disabled: bool,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let n = sqlx::query("UPDATE clients SET disabled = ? WHERE id = ?")
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
    }

    async fn disabled_client_ids(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM clients WHERE disabled <> 0")
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }

    async fn insert_client(&self, c: &Client, audit: Audit<'_>) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    }

    async fn client_by_id(&self, id: &str) -> StoreResult<Option<Client>> {
        self.by_key("SELECT * FROM clients WHERE id = ?", id, client_of)
            .await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn set_user_password(
        &self,
        partner_id: &str,
        username: &str,
        hash: &PasswordHash,
        audit: Audit<'_>,
    ) -> StoreResult<String> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let id: Option<String> = sqlx::query_scalar(
            "UPDATE users SET password_hash = ? WHERE partner_id = ? AND username = ? RETURNING id",
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
    }

    async fn insert_user(&self, u: &User, audit: Audit<'_>) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        insert_user(&mut *tx, u).await?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)
    }

    async fn insert_member(&self, a: &Account, u: &User) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        insert_account_in(&mut *tx, a).await?;
        insert_user(&mut *tx, u).await?;
        tx.commit().await.map_err(err)
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.by_key("SELECT * FROM users WHERE id = ?", id, user_of)
            .await
    }

    async fn upsert_customer(&self, u: &User) -> StoreResult<(User, bool)> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let existing = sqlx::query("SELECT * FROM users WHERE partner_id = ? AND username = ?")
            .bind(&u.partner_id)
            .bind(&u.username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .as_ref()
            .map(user_of)
            .transpose()?;
        let result = match existing {
            // A staff user with this username is never touched by a customer sign-up, nor is
            // another client's customer.
            Some(old) if old.role != Role::Customer => return Ok((old, true)),
            Some(old) if old.signed_up_by.is_some() && old.signed_up_by != u.signed_up_by => {
                return Ok((old, true));
            }
            None => {
                insert_user(&mut *tx, u).await?;
                (u.clone(), false)
            }
            Some(old) => {
                let updated = User {
                    password_hash: u.password_hash.clone(),
                    first_name: u.first_name.clone().or(old.first_name.clone()),
                    last_name: u.last_name.clone().or(old.last_name.clone()),
                    external_id: u.external_id.clone().or(old.external_id.clone()),
                    signed_up_by: u.signed_up_by.clone(),
                    ..old
                };
                sqlx::query(
                    "UPDATE users SET password_hash = ?, first_name = ?, last_name = ?, external_id = ?,
                                      signed_up_by = ?
                     WHERE id = ?",
                )
                .bind(&updated.password_hash.0)
                .bind(&updated.first_name)
                .bind(&updated.last_name)
                .bind(&updated.external_id)
                .bind(&updated.signed_up_by)
                .bind(&updated.id)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                // A new clientUserToken is a password reset: the old one's sessions end (I6).
                end_sessions_in(&mut tx, &updated.id).await?;
                (updated, true)
            }
        };
        emit(
            &mut tx,
            &Change::User {
                partner_id: u.partner_id.clone(),
                username: u.username.clone(),
            },
        )
        .await?;
        tx.commit().await.map_err(err)?;
        Ok(result)
    }

    async fn user_by_username(
        &self,
        partner_id: &str,
        username: &str,
    ) -> StoreResult<Option<User>> {
        sqlx::query("SELECT * FROM users WHERE partner_id = ? AND username = ?")
            .bind(partner_id)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .as_ref()
            .map(user_of)
            .transpose()
    }
}

#[async_trait]
impl ScopeStore for SqliteStore {
    async fn add_scopes(
        &self,
        names: &[String],
        description: Option<&str>,
        audit: Audit<'_>,
    ) -> StoreResult<()> {
        let mut tx = self.gate.begin(&self.pool).await?;
        for name in names {
            sqlx::query(
                "INSERT INTO scopes (name, description) VALUES (?, ?)
                 ON CONFLICT (name) DO UPDATE SET description = coalesce(excluded.description, description)",
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
    }

    async fn scope_descriptions(&self) -> StoreResult<Vec<(String, Option<String>)>> {
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
    }

    async fn list_scopes(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT name FROM scopes ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }
}
