//! PostgreSQL: the browser flow (`AuthorizationStore`): pending requests, sessions, grants
//! (consent) and authorization codes.

use super::*;

#[async_trait]
impl AuthorizationStore for PgStore {
    async fn insert_authorization_request(&self, r: &AuthorizationRequest) -> StoreResult<()> {
        self.timed(async move {
            sqlx::query(
                "INSERT INTO authorization_requests (id, client_id, redirect_uri, scope, state,
                     code_challenge, code_challenge_method, dialect, expires_at, nonce, prompt,
                     min_auth_time, subject)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
        })
        .await
    }

    async fn authorization_request(
        &self,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<AuthorizationRequest>> {
        self.timed(async move {
            let row = sqlx::query(
                "SELECT * FROM authorization_requests WHERE id = $1 AND expires_at > $2",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
            row.as_ref().map(request_of).transpose()
        })
        .await
    }

    async fn consume_authorization_request(&self, id: &str) -> StoreResult<bool> {
        self.timed(async move {
            Ok(
                sqlx::query("DELETE FROM authorization_requests WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?
                    .rows_affected()
                    == 1,
            )
        })
        .await
    }

    async fn set_request_login(&self, id: &str, sid: &str) -> StoreResult<bool> {
        self.timed(async move {
            Ok(
                sqlx::query("UPDATE authorization_requests SET login_sid = $1 WHERE id = $2")
                    .bind(sid)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?
                    .rows_affected()
                    == 1,
            )
        })
        .await
    }

    async fn insert_session(&self, s: &Session, password: &PasswordHash) -> StoreResult<bool> {
        self.timed(async move {
            // One statement, one snapshot: the password check and the epoch copied agree.
            let inserted = sqlx::query(
                "INSERT INTO sessions (digest, user_id, expires_at, authenticated_at, epoch)
                 SELECT $1, id, $2, $3, session_epoch FROM users
                 WHERE id = $4 AND password_hash = $5",
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
        })
        .await
    }

    async fn end_user_sessions(&self, user_id: &str, audit: Audit<'_>) -> StoreResult<u64> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
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
        })
        .await
    }

    async fn session(&self, digest: &SecretDigest, now: i64) -> StoreResult<Option<Session>> {
        self.timed(async move {
            let row = sqlx::query(
                "SELECT s.* FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.digest = $1 AND s.expires_at > $2 AND s.epoch = u.session_epoch",
            )
            .bind(&digest.0[..])
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
            row.as_ref().map(session_of).transpose()
        })
        .await
    }

    async fn delete_session(&self, digest: &SecretDigest) -> StoreResult<()> {
        self.timed(async move {
            sqlx::query("DELETE FROM sessions WHERE digest = $1")
                .bind(&digest.0[..])
                .execute(&self.pool)
                .await
                .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn upsert_grant(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<Grant> {
        // Two first consents can both miss the SELECT; the loser retries and widens the winner's.
        match self.upsert_grant_once(user_id, client_id, scope, now).await {
            Err(StoreError::Conflict(_)) => {
                self.upsert_grant_once(user_id, client_id, scope, now).await
            }
            other => other,
        }
    }

    async fn active_grant(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Grant>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM grants WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL",
            )
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .as_ref()
            .map(grant_of)
            .transpose()
        })
        .await
    }

    async fn grant_by_id(&self, id: &str) -> StoreResult<Option<Grant>> {
        self.timed(async move {
            self.by_key("SELECT * FROM grants WHERE id = $1", id, grant_of)
                .await
        })
        .await
    }

    async fn list_grants(&self, user_id: &str) -> StoreResult<Vec<Grant>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM grants WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
            )
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?
            .iter()
            .map(grant_of)
            .collect()
        })
        .await
    }

    async fn revoke_grant(
        &self,
        user_id: &str,
        client_id: &str,
        until: i64,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<bool> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let grant: Option<String> = sqlx::query_scalar(
                "UPDATE grants SET revoked_at = $1 WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL
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
            // The grant is held: no family starts under it any more (a start holds it shared, and
            // every family of a grant gets its row when it starts). Take every family's lock
            // (waiting for rotations in flight), then mark them, then revoke their tokens,
            // successors of those rotations included. Only this path takes more than one family
            // lock, and the grant's row serializes it: no two lock sets can cross.
            sqlx::query(
                "SELECT pg_advisory_xact_lock($1, hashtext(id)) FROM refresh_families
                 WHERE grant_id = $2 AND revoked_at IS NULL",
            )
            .bind(FAMILY_LOCK)
            .bind(&grant_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            let families: Vec<String> = sqlx::query_scalar(
                "UPDATE refresh_families SET revoked_at = $1
                 WHERE grant_id = $2 AND revoked_at IS NULL RETURNING id",
            )
            .bind(now)
            .bind(&grant_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE grant_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&grant_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            record_revocations(&mut tx, &families, until).await?;
            append_audit_in(&mut tx, audit).await?;
            tx.commit().await.map_err(err)?;
            Ok(true)
        })
        .await
    }

    async fn insert_authorization_code(&self, c: &AuthorizationCode) -> StoreResult<()> {
        self.timed(async move {
            sqlx::query(
                "INSERT INTO authorization_codes (digest, client_id, redirect_uri, code_challenge,
                     code_challenge_method, user_id, account_id, scope, grant_id, family_id,
                     expires_at, nonce, auth_time, sid)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
        })
        .await
    }

    async fn take_authorization_code(
        &self,
        digest: &SecretDigest,
        client_id: &str,
        now: i64,
    ) -> StoreResult<CodeTaking> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let taken = sqlx::query(
                "UPDATE authorization_codes SET used_at = $1
                 WHERE digest = $2 AND client_id = $3 AND used_at IS NULL RETURNING *",
            )
            .bind(now)
            .bind(&digest.0[..])
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            let result = match taken {
                Some(row) => CodeTaking::Taken(code_of(&row)?),
                None => match sqlx::query("SELECT * FROM authorization_codes WHERE digest = $1")
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
        })
        .await
    }
}
