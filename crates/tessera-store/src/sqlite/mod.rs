//! The SQLite backend: one file, WAL journal, `synchronous = FULL` (a committed refresh token
//! survives a power cut, not only a process crash), `BEGIN IMMEDIATE` for every transaction that
//! writes so that two writers never deadlock on a lock upgrade.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, raw_sql};
use tokio::sync::{mpsc, oneshot};

mod writer;

use writer::{MAX_BATCH, Write, checkpointer, writer};

use crate::rows::{bad_row, union_scope};
use tessera_core::audit::{AuditEvent, AuditQuery};
use tessera_core::keys::{Alg, KeyUse, StoredKey};
use tessera_core::lockout::{self, Bucket, LockoutPolicy};
use tessera_core::model::{
    Account, AdminScope, AdminToken, AuthorizationCode, AuthorizationRequest, Change, Client,
    Grant, GrantType, IdempotentRecord, Partner, PartnerStatus, PasswordHash, RefreshFamily,
    RefreshToken, Role, Session, User,
};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretDigest;
use tessera_core::store::{
    AccountStore, AdminStore, AttemptStore, AuditStore, AuthorizationStore, ChangeFeed,
    ClientStore, CodeTaking, GrantsOf, InventoryStore, Janitor, KeyStore, PartnerStore, Purge,
    Rotation, ScopeStore, Store, StoreError, StoreResult, Successor, TokenOwner, TokenStore,
    UserFilter, UserStore,
};

/// Migrations, applied in order inside one transaction each; the applied version is kept in
/// `schema_version`.
pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_user_profile.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_authorization_code.sql"),
    ),
    (4, include_str!("../../migrations/sqlite/0004_security.sql")),
    (
        5,
        include_str!("../../migrations/sqlite/0005_refresh_retry.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_inventory.sql"),
    ),
    (7, include_str!("../../migrations/sqlite/0007_audit.sql")),
    (
        8,
        include_str!("../../migrations/sqlite/0008_key_schedule.sql"),
    ),
    (9, include_str!("../../migrations/sqlite/0009_openid.sql")),
    (
        10,
        include_str!("../../migrations/sqlite/0010_admin_api.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_families.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_session_epoch.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_customer_client.sql"),
    ),
    (
        14,
        include_str!("../../migrations/sqlite/0014_hinted_subject.sql"),
    ),
];

pub struct SqliteStore {
    pool: SqlitePool,
    writes: mpsc::Sender<Write>,
}

fn err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let msg = db.message();
            StoreError::Conflict(if msg.contains("email") {
                "email"
            } else if msg.contains("org_code") {
                "org_code"
            } else if msg.contains("external_id") {
                "external_id"
            } else if msg.contains("username") {
                "username"
            } else {
                "id"
            })
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::PoolTimedOut => {
            tessera_core::telemetry::db_timeout("sqlite");
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) if db.message().contains("database is locked") => {
            tessera_core::telemetry::db_timeout("sqlite");
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

fn unix_now() -> i64 {
    tessera_core::unix_now()
}

async fn emit(conn: &mut SqliteConnection, change: &Change) -> StoreResult<()> {
    let (kind, key) = change.encode();
    sqlx::query("INSERT INTO changes (kind, key, at) VALUES (?, ?, ?)")
        .bind(kind)
        .bind(key)
        .bind(unix_now())
        .execute(conn)
        .await
        .map_err(err)?;
    Ok(())
}

/// Create a missing database file readable by its owner only (0600). SQLite gives the WAL and
/// shared-memory files the database file's permissions, so they are private too.
fn create_private(url: &str) -> StoreResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(path) = crate::sqlite_path(url) else {
        return Ok(());
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Other(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

impl SqliteStore {
    /// Open `url` (`sqlite://PATH`), creating the file and applying migrations when needed.
    /// SQLite can refuse to open a file another process is checkpointing with "database is
    /// locked" without waiting for its busy timeout; that is retried for up to the timeout.
    pub async fn open(url: &str, opts: &crate::Options) -> StoreResult<SqliteStore> {
        let deadline = std::time::Instant::now() + opts.timeout.max(Duration::from_secs(1));
        loop {
            match Self::open_once(url, opts).await {
                Err(StoreError::Unavailable(e))
                    if e.contains("locked") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                done => return done,
            }
        }
    }

    async fn open_once(url: &str, opts: &crate::Options) -> StoreResult<SqliteStore> {
        create_private(url)?;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Checkpoints run in the background (see `checkpointer`), not inside a commit.
            .pragma("wal_autocheckpoint", "0")
            // After a checkpoint, a WAL that a burst grew is cut back to 64 MiB, not kept.
            .pragma("journal_size_limit", "67108864")
            .busy_timeout(opts.timeout.max(Duration::from_millis(100)));
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.pool_size.unwrap_or(8).max(1))
            .acquire_timeout(opts.timeout.max(Duration::from_millis(100)))
            .connect_with(options)
            .await
            .map_err(err)?;
        let (writes, queue) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(writer(pool.clone(), queue));
        tokio::spawn(checkpointer(pool.clone(), writes.downgrade()));
        let store = SqliteStore { pool, writes };
        store.migrate().await?;
        Ok(store)
    }

    /// Queue a write for the group-commit writer and wait for its committed result.
    async fn write<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Write,
    ) -> StoreResult<T> {
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(op(reply))
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        let committed = answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        tessera_core::telemetry::db_call("sqlite", started);
        committed
    }

    /// One row by a single text key, mapped to its record.
    async fn by_key<T>(
        &self,
        sql: &'static str,
        key: &str,
        map: fn(&SqliteRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let started = std::time::Instant::now();
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        tessera_core::telemetry::db_call("sqlite", started);
        row.as_ref().map(map).transpose()
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let current: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        let current = current.unwrap_or(0);
        // A database a much newer release migrated is left untouched (crate::release).
        raw_sql(crate::release::CREATE_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let newest: Option<i64> = sqlx::query_scalar("SELECT max(release) FROM schema_release")
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
        let newest = newest.unwrap_or(0);
        crate::release::check(newest)?;
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            raw_sql(*sql).execute(&mut *tx).await.map_err(err)?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tracing::info!(version, "applied SQLite migration");
        }
        if newest < crate::release::RELEASE {
            sqlx::query("INSERT INTO schema_release (release) VALUES (?)")
                .bind(crate::release::RELEASE)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }
}

crate::rows::row_mappers!(SqliteRow);

async fn insert_user<'c, E>(conn: E, u: &User) -> StoreResult<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO users (id, partner_id, account_id, username, role, password_hash,
                            first_name, last_name, external_id, created_at, signed_up_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&u.id)
    .bind(&u.partner_id)
    .bind(&u.account_id)
    .bind(&u.username)
    .bind(u.role.as_str())
    .bind(&u.password_hash.0)
    .bind(&u.first_name)
    .bind(&u.last_name)
    .bind(&u.external_id)
    .bind(u.created_at)
    .bind(&u.signed_up_by)
    .execute(conn)
    .await
    .map_err(err)?;
    Ok(())
}

/// End a user's browser sessions (see `AuthorizationStore::end_user_sessions`) in the caller's
/// transaction: the user's partner and username (for the caller's `Change::User`) and how many
/// sessions were deleted.
async fn end_sessions_in(
    conn: &mut SqliteConnection,
    user_id: &str,
) -> StoreResult<(String, String, u64)> {
    let user: Option<(String, String)> = sqlx::query_as(
        "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ?
         RETURNING partner_id, username",
    )
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    let Some((partner_id, username)) = user else {
        return Err(StoreError::NotFound("user"));
    };
    let n = sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(err)?
        .rows_affected();
    Ok((partner_id, username, n))
}

async fn partner_exists(conn: &mut SqliteConnection, id: &str) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT 1 FROM partners WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(err)?
        .is_some())
}

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn revoke_partner_token(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        }
        tx.commit().await.map_err(err)?;
        Ok(partner)
    }

    async fn revoke_partner_tokens(&self, partner_id: &str, now: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        }
        tx.commit().await.map_err(err)?;
        Ok(n)
    }

    async fn insert_partner(&self, p: &Partner) -> StoreResult<()> {
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
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn partner_by_id(&self, id: &str) -> StoreResult<Option<Partner>> {
        self.by_key("SELECT * FROM partners WHERE id = ?", id, partner_of)
            .await
    }

    async fn partner_by_email(&self, email: &str) -> StoreResult<Option<Partner>> {
        self.by_key("SELECT * FROM partners WHERE email = ?", email, partner_of)
            .await
    }

    async fn set_partner_status(&self, id: &str, status: PartnerStatus) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        tx.commit().await.map_err(err)
    }

    async fn partner_ids_with_status(&self, status: PartnerStatus) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM partners WHERE status = ?")
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }

    async fn set_partner_password(&self, id: &str, hash: &PasswordHash) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        tx.commit().await.map_err(err)
    }

    async fn insert_partner_token(
        &self,
        partner_id: &str,
        digest: &SecretDigest,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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

#[async_trait]
impl AccountStore for SqliteStore {
    async fn insert_account(&self, a: &Account) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO accounts (id, partner_id, name, external_id, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&a.id)
        .bind(&a.partner_id)
        .bind(&a.name)
        .bind(&a.external_id)
        .bind(a.created_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
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
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        tx.commit().await.map_err(err)
    }

    async fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        tx.commit().await.map_err(err)
    }

    async fn disabled_client_ids(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT id FROM clients WHERE disabled <> 0")
            .fetch_all(&self.pool)
            .await
            .map_err(err)
    }

    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        if !partner_exists(&mut tx, &c.partner_id).await? {
            return Err(StoreError::NotFound("partner"));
        }
        let grant_types: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        sqlx::query(
            "INSERT INTO clients (id, partner_id, name, secret_digest, grant_types, scopes,
                                  redirect_uris, frame_origins, dev, pkce_plain,
                                  allow_registration, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        emit(&mut tx, &Change::Client(c.id.clone())).await?;
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
    ) -> StoreResult<String> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        tx.commit().await.map_err(err)?;
        Ok(id)
    }

    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        insert_user(&self.pool, u).await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.by_key("SELECT * FROM users WHERE id = ?", id, user_of)
            .await
    }

    async fn upsert_customer(&self, u: &User) -> StoreResult<(User, bool)> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
    async fn add_scopes(&self, names: &[String], description: Option<&str>) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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

    async fn rotate_keys(&self, key: &StoredKey, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        // Keys that sign now or signed before stop; a pending key still activates later.
        sqlx::query(
            "UPDATE signing_keys SET retired_at = ?1
             WHERE retired_at IS NULL AND COALESCE(activates_at, created_at) <= ?1
               AND purpose = ?2",
        )
        .bind(now)
        .bind(key.purpose.as_str())
        .execute(&mut *tx)
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
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        emit(&mut tx, &Change::Keys).await?;
        tx.commit().await.map_err(err)
    }

    async fn schedule_key(&self, key: &StoredKey, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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

    async fn revoke_key(&self, kid: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        emit(&mut tx, &Change::Keys).await?;
        tx.commit().await.map_err(err)
    }
}

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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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

async fn record_revocation(conn: &mut SqliteConnection, id: &str, until: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO revocations (id, until) VALUES (?, ?)
         ON CONFLICT (id) DO UPDATE SET until = max(until, excluded.until)",
    )
    .bind(id)
    .bind(until)
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    emit(
        conn,
        &Change::Revoked {
            id: id.to_string(),
            until,
        },
    )
    .await
}

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

    async fn end_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        let (partner_id, username, n) = end_sessions_in(&mut tx, user_id).await?;
        emit(
            &mut tx,
            &Change::User {
                partner_id,
                username,
            },
        )
        .await?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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

#[async_trait]
impl AttemptStore for SqliteStore {
    async fn reserve_attempt(
        &self,
        key: &[u8; 32],
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Result<(), u64>> {
        // The write lock, taken first, makes the read and the write one step for every caller.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
impl Janitor for SqliteStore {
    async fn purge(&self, what: Purge, now: i64, grace: i64, batch: u32) -> StoreResult<u64> {
        let sql = purge_sql(what);
        let (before, revoked_before) = what.cutoffs(now, grace);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
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
        tx.commit().await.map_err(err)?;
        Ok(n)
    }
}

fn purge_sql(what: Purge) -> &'static str {
    match what {
        Purge::PendingRequests => {
            "DELETE FROM authorization_requests WHERE id IN (
                 SELECT id FROM authorization_requests WHERE expires_at < ?1 LIMIT ?2)"
        }
        Purge::Codes => {
            "DELETE FROM authorization_codes WHERE digest IN (
                 SELECT digest FROM authorization_codes WHERE expires_at < ?1 LIMIT ?2)"
        }
        Purge::Sessions => {
            "DELETE FROM sessions WHERE digest IN (
                 SELECT digest FROM sessions WHERE expires_at < ?1 LIMIT ?2)"
        }
        Purge::Revocations => {
            "DELETE FROM revocations WHERE id IN (
                 SELECT id FROM revocations WHERE until < ?1 LIMIT ?2)"
        }
        Purge::Families => {
            "DELETE FROM refresh_families WHERE id IN (
                 SELECT id FROM refresh_families WHERE issued_at < ?1 LIMIT ?2)"
        }
        Purge::AuditEvents => {
            "DELETE FROM audit_events WHERE id IN (
                 SELECT id FROM audit_events WHERE at < ?1 LIMIT ?2)"
        }
        Purge::RefreshTokens => {
            "DELETE FROM refresh_tokens
             WHERE digest IN (SELECT digest FROM refresh_tokens WHERE expires_at < ?1 LIMIT ?3)
                OR digest IN (SELECT digest FROM refresh_tokens WHERE revoked_at < ?2 LIMIT ?3)"
        }
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

#[async_trait]
impl Store for SqliteStore {
    fn pool_use(&self) -> tessera_core::store::PoolUse {
        tessera_core::store::PoolUse {
            open: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(err)
            .map(|_| ())
    }
}

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

fn admin_scopes(scopes: &[AdminScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn insert_admin_token(&self, t: &AdminToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, digest, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.digest.0[..])
        .bind(admin_scopes(&t.scopes))
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
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

    async fn revoke_admin_token(&self, id: &str, now: i64) -> StoreResult<bool> {
        Ok(sqlx::query(
            "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(err)?
        .rows_affected()
            == 1)
    }

    async fn reserve_idempotency_key(
        &self,
        token_id: &str,
        key: &str,
        fingerprint: &SecretDigest,
        now: i64,
        older_than: i64,
    ) -> StoreResult<Option<IdempotentRecord>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(older_than)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (token_id, key, fingerprint, created_at)
             VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(token_id)
        .bind(key)
        .bind(&fingerprint.0[..])
        .bind(now)
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
        status: i64,
        body: &[u8],
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = ?, body = ? WHERE token_id = ? AND key = ?",
        )
        .bind(status)
        .bind(body)
        .bind(token_id)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn release_idempotency_key(&self, token_id: &str, key: &str) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE token_id = ? AND key = ? AND status IS NULL",
        )
        .bind(token_id)
        .bind(key)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        for chunk in events.chunks(500) {
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
            insert.build().execute(&mut *tx).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        sqlx::query(
            "SELECT * FROM audit_events WHERE at >= ?1 AND at < ?2
               AND (?3 IS NULL OR partner_id = ?3) AND (?4 IS NULL OR username = ?4)
               AND (?5 IS NULL OR client_id = ?5) AND (?6 IS NULL OR event = ?6)
               AND id < ?8
             ORDER BY id DESC LIMIT ?7",
        )
        .bind(q.since.unwrap_or(i64::MIN))
        .bind(q.until.unwrap_or(i64::MAX))
        .bind(q.partner_id.as_deref())
        .bind(q.username.as_deref())
        .bind(q.client_id.as_deref())
        .bind(q.event.as_deref())
        .bind(i64::from(q.limit))
        .bind(q.before.unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        .iter()
        .map(audit_of)
        .collect()
    }
}
