//! SQLite: the browser flow (`AuthorizationStore`): pending requests, sessions, grants (consent)
//! and authorization codes.

use super::*;

#[async_trait]
impl AuthorizationStore for SqliteStore {
    async fn insert_authorization_request(&self, r: &AuthorizationRequest) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO authorization_requests (id, client_id, redirect_uri, scope, state,
                 code_challenge, code_challenge_method, dialect, expires_at, nonce, prompt,
                 min_auth_time, subject)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.id)
        .bind(&r.client_id)
        .bind(&r.redirect_uri)
        .bind(&r.scope)
        .bind(&r.state)
        .bind(&r.code_challenge)
        .bind(&r.code_challenge_method)
        .bind(&r.dialect)
        .bind(r.expires_at)
        .bind(&r.nonce)
        .bind(&r.prompt)
        .bind(r.min_auth_time)
        .bind(&r.subject)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn authorization_request(
        &self,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<AuthorizationRequest>> {
        let row =
            sqlx::query("SELECT * FROM authorization_requests WHERE id = ? AND expires_at > ?")
                .bind(id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
        row.as_ref().map(request_of).transpose()
    }

    async fn consume_authorization_request(&self, id: &str) -> StoreResult<bool> {
        Ok(
            sqlx::query("DELETE FROM authorization_requests WHERE id = ?")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected()
                == 1,
        )
    }

    async fn set_request_login(&self, id: &str, sid: &str) -> StoreResult<bool> {
        Ok(
            sqlx::query("UPDATE authorization_requests SET login_sid = ? WHERE id = ?")
                .bind(sid)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected()
                == 1,
        )
    }

    async fn insert_session(&self, s: &Session, password: &PasswordHash) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO sessions (digest, user_id, expires_at, authenticated_at, epoch)
             SELECT ?, id, ?, ?, session_epoch FROM users WHERE id = ? AND password_hash = ?",
        )
        .bind(&s.digest.0[..])
        .bind(s.expires_at)
        .bind(s.authenticated_at)
        .bind(&s.user_id)
        .bind(&password.0)
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn end_user_sessions(&self, user_id: &str, audit: Audit<'_>) -> StoreResult<u64> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let (partner_id, username, n) = end_sessions_in(&mut tx, user_id).await?;
        emit(
            &mut tx,
            &Change::User {
                partner_id,
                username,
            },
        )
        .await?;
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    async fn session(&self, digest: &SecretDigest, now: i64) -> StoreResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.* FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.digest = ? AND s.expires_at > ? AND s.epoch = u.session_epoch",
        )
        .bind(&digest.0[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?;
        row.as_ref().map(session_of).transpose()
    }

    async fn delete_session(&self, digest: &SecretDigest) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE digest = ?")
            .bind(&digest.0[..])
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn upsert_grant(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<Grant> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let existing = sqlx::query(
            "SELECT * FROM grants WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?
        .as_ref()
        .map(grant_of)
        .transpose()?;
        let grant = match existing {
            Some(mut g) => {
                let union = union_scope(&g.scope, scope);
                if union != g.scope {
                    sqlx::query("UPDATE grants SET scope = ? WHERE id = ?")
                        .bind(&union)
                        .bind(&g.id)
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                    g.scope = union;
                }
                g
            }
            None => {
                let g = Grant {
                    id: tessera_core::secret::new_id(),
                    user_id: user_id.into(),
                    client_id: client_id.into(),
                    scope: union_scope("", scope),
                    created_at: now,
                    revoked_at: None,
                };
                sqlx::query(
                    "INSERT INTO grants (id, user_id, client_id, scope, created_at) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(&g.id)
                .bind(&g.user_id)
                .bind(&g.client_id)
                .bind(&g.scope)
                .bind(g.created_at)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                g
            }
        };
        tx.commit().await.map_err(err)?;
        Ok(grant)
    }

    async fn active_grant(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Grant>> {
        sqlx::query(
            "SELECT * FROM grants WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(err)?
        .as_ref()
        .map(grant_of)
        .transpose()
    }

    async fn grant_by_id(&self, id: &str) -> StoreResult<Option<Grant>> {
        self.by_key("SELECT * FROM grants WHERE id = ?", id, grant_of)
            .await
    }

    async fn list_grants(&self, user_id: &str) -> StoreResult<Vec<Grant>> {
        sqlx::query(
            "SELECT * FROM grants WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        .iter()
        .map(grant_of)
        .collect()
    }

    async fn revoke_grant(
        &self,
        user_id: &str,
        client_id: &str,
        until: i64,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<bool> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let grant: Option<String> = sqlx::query_scalar(
            "UPDATE grants SET revoked_at = ? WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let Some(grant_id) = grant else {
            return Ok(false);
        };
        let families: Vec<String> = sqlx::query_scalar(
            "UPDATE refresh_families SET revoked_at = ?1 WHERE grant_id = ?2 AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(now)
        .bind(&grant_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(err)?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(&grant_id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        for family in families {
            record_revocation(&mut tx, &family, until).await?;
        }
        append_audit_in(&mut tx, audit).await?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn insert_authorization_code(&self, c: &AuthorizationCode) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO authorization_codes (digest, client_id, redirect_uri, code_challenge,
                 code_challenge_method, user_id, account_id, scope, grant_id, family_id, expires_at,
                 nonce, auth_time, sid)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.digest.0[..])
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.code_challenge_method)
        .bind(&c.user_id)
        .bind(&c.account_id)
        .bind(&c.scope)
        .bind(&c.grant_id)
        .bind(&c.family_id)
        .bind(c.expires_at)
        .bind(&c.nonce)
        .bind(c.auth_time)
        .bind(&c.sid)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn take_authorization_code(
        &self,
        digest: &SecretDigest,
        client_id: &str,
        now: i64,
    ) -> StoreResult<CodeTaking> {
        let mut tx = self.gate.begin(&self.pool).await?;
        let taken = sqlx::query(
            "UPDATE authorization_codes SET used_at = ?
             WHERE digest = ? AND client_id = ? AND used_at IS NULL RETURNING *",
        )
        .bind(now)
        .bind(&digest.0[..])
        .bind(client_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?;
        let result = match taken {
            Some(row) => CodeTaking::Taken(code_of(&row)?),
            None => match sqlx::query("SELECT * FROM authorization_codes WHERE digest = ?")
                .bind(&digest.0[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?
            {
                Some(row) => {
                    let code = code_of(&row)?;
                    if code.client_id == client_id {
                        CodeTaking::Reused(code)
                    } else {
                        CodeTaking::OtherClient
                    }
                }
                None => CodeTaking::Unknown,
            },
        };
        tx.commit().await.map_err(err)?;
        Ok(result)
    }
}
