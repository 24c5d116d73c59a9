//! The SQLite backend: one file, WAL journal, `synchronous = FULL` (a committed refresh token
//! survives a power cut, not only a process crash), `BEGIN IMMEDIATE` for every transaction that
//! writes so that two writers never deadlock on a lock upgrade.
//!
//! This file holds the connection, the migrations, the error mapping and what several traits
//! share; each group of store traits is implemented in a child module: `registry`, `keys`,
//! `tokens`, `authorization`, `upkeep` and `admin` (and `writer`, the group commit).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, raw_sql};
use tokio::sync::{mpsc, oneshot};

mod gate;
mod writer;

use gate::WriteGate;
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
    AccountStore, AdminStore, AttemptStore, Audit, AuditStore, AuthorizationStore, ChangeFeed,
    ClientStore, CodeTaking, GrantsOf, InventoryStore, Janitor, KeyStore, PartnerStore, Purge,
    Rotation, ScopeStore, Store, StoreError, StoreResult, Successor, TokenOwner, TokenStore,
    UserFilter, UserStore,
};

mod admin;
mod authorization;
mod keys;
mod registry;
mod tokens;
mod upkeep;

use admin::append_audit_in;

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
    (
        15,
        include_str!("../../migrations/sqlite/0015_idempotency_outcome.sql"),
    ),
    (
        16,
        include_str!("../../migrations/sqlite/0016_audit_batches.sql"),
    ),
    (
        17,
        include_str!("../../migrations/sqlite/0017_rate_budgets.sql"),
    ),
    (
        18,
        include_str!("../../migrations/sqlite/0018_require_par.sql"),
    ),
];

pub struct SqliteStore {
    pool: SqlitePool,
    writes: mpsc::Sender<Write>,
    /// Every write transaction of this process takes its turn here (see `gate`).
    gate: WriteGate,
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
        let gate = WriteGate::new(opts.timeout.max(Duration::from_millis(100)));
        tokio::spawn(writer(pool.clone(), gate.clone(), queue));
        tokio::spawn(checkpointer(pool.clone(), writes.downgrade()));
        let store = SqliteStore { pool, writes, gate };
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
        let mut tx = self.gate.begin(&self.pool).await?;
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
        // A batch's marker row goes with its batch (`upkeep`), never before it.
        Purge::AuditEvents => {
            "DELETE FROM audit_events WHERE id IN (
                 SELECT id FROM audit_events
                  WHERE at < ?1 AND event <> 'token.issued.batch' LIMIT ?2)"
        }
        Purge::RefreshTokens => {
            "DELETE FROM refresh_tokens
             WHERE digest IN (SELECT digest FROM refresh_tokens WHERE expires_at < ?1 LIMIT ?3)
                OR digest IN (SELECT digest FROM refresh_tokens WHERE revoked_at < ?2 LIMIT ?3)"
        }
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

fn admin_scopes(scopes: &[AdminScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
