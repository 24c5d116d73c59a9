//! The PostgreSQL backend, for many `tessera serve` nodes on one database. Same contracts as
//! SQLite, kept by PostgreSQL's own means: row-level compare-and-swap (`UPDATE … WHERE … RETURNING`
//! re-checks its condition after a concurrent writer commits), a partial unique index for active
//! grants, and a transaction-scoped advisory lock around every change-feed append so that
//! sequence order equals commit order; each append also `NOTIFY`s the nodes listening, so they
//! apply it at once rather than at their next poll. Every call is bounded by the configured timeout on the
//! client side (a dead network path answers `Unavailable` in time), and by `statement_timeout`
//! on the server side.
//!
//! This file holds the connection, the migrations, the error mapping and what several traits
//! share; each group of store traits is implemented in a child module: `registry`, `keys`,
//! `tokens`, `authorization`, `upkeep` and `admin`.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, raw_sql};

use crate::rows::{bad_row, is_retry, successor_of, union_scope};
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
use tokens::{FAMILY_LOCK, record_revocations};

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_security.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_refresh_retry.sql"),
    ),
    (4, include_str!("../migrations/postgres/0004_inventory.sql")),
    (5, include_str!("../migrations/postgres/0005_audit.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_key_schedule.sql"),
    ),
    (7, include_str!("../migrations/postgres/0007_openid.sql")),
    (8, include_str!("../migrations/postgres/0008_admin_api.sql")),
    (9, include_str!("../migrations/postgres/0009_families.sql")),
    (
        10,
        include_str!("../migrations/postgres/0010_session_epoch.sql"),
    ),
    (
        11,
        include_str!("../migrations/postgres/0011_customer_client.sql"),
    ),
    (
        12,
        include_str!("../migrations/postgres/0012_hinted_subject.sql"),
    ),
    (
        13,
        include_str!("../migrations/postgres/0013_idempotency_outcome.sql"),
    ),
    (
        14,
        include_str!("../migrations/postgres/0014_audit_batches.sql"),
    ),
    (
        15,
        include_str!("../migrations/postgres/0015_rate_budgets.sql"),
    ),
    (
        16,
        include_str!("../migrations/postgres/0016_require_par.sql"),
    ),
];

/// Advisory lock keys: one for migrations, one for change-feed appends.
const MIGRATION_LOCK: i64 = 0x7e55_e4a0;
const CHANGES_LOCK: i64 = 0x7e55_e4a1;
pub struct PgStore {
    pool: PgPool,
    /// Rate-budget leases only (two connections, opened on first use): a lease must not wait
    /// for a connection behind the requests it limits, or a flood of unknown clients that fills
    /// the main pool would push every lease past its deadline (see `engine::limits`).
    /// Lease connections of the callers' budgets (the token limit), and of the requesters'
    /// (the page throttles), apart from each other and from `pool`
    /// ([`tessera_core::budget::Lane`]).
    budgets: PgPool,
    requester_budgets: PgPool,
    timeout: Duration,
    /// For the change listener's own connection, started by the first `change_signal` call
    /// (a server's; the CLI never starts it).
    listen_options: PgConnectOptions,
    signal: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
}

/// A failed first connection, said so that an operator knows what to fix: PostgreSQL's own
/// message without the server's source line, and the fix for the two usual causes.
fn connect_err(e: sqlx::Error, options: &PgConnectOptions) -> StoreError {
    let sqlx::Error::Database(db) = &e else {
        return err(e);
    };
    let database = options.get_database().unwrap_or("(the user's name)");
    match db.code().as_deref() {
        Some("3D000") => StoreError::Other(format!(
            "PostgreSQL has no database {database:?}: create it (createdb -O USER {database}) \
             or correct the URL"
        )),
        Some("28P01" | "28000") => StoreError::Other(format!(
            "PostgreSQL refused the sign-in: {}; check the URL's user and password",
            db.message()
        )),
        _ => StoreError::Other(format!(
            "PostgreSQL refused the connection: {}",
            db.message()
        )),
    }
}

fn err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            let c = db.constraint().unwrap_or("");
            StoreError::Conflict(if c.contains("email") {
                "email"
            } else if c.contains("org_code") {
                "org_code"
            } else if c.contains("external_id") {
                "external_id"
            } else if c.contains("username") {
                "username"
            } else {
                "id"
            })
        }
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| {
                // 08: connection exceptions; 57: operator intervention (shutdown, statement
                // timeout 57014); 53: insufficient resources.
                c.starts_with("08") || c.starts_with("57") || c.starts_with("53")
            }) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::PoolTimedOut => {
            tessera_core::telemetry::db_timeout("postgres");
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

fn unix_now() -> i64 {
    tessera_core::unix_now()
}

async fn emit(conn: &mut PgConnection, change: &Change) -> StoreResult<()> {
    emit_all(conn, std::slice::from_ref(change)).await
}

/// Append `changes` to the feed in order, in a fixed number of statements however many there
/// are, under the feed's lock (sequence order is commit order), announced once.
async fn emit_all(conn: &mut PgConnection, changes: &[Change]) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGES_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(err)?;
    let (kinds, keys): (Vec<&str>, Vec<String>) = changes.iter().map(Change::encode).unzip();
    sqlx::query(
        "INSERT INTO changes (kind, key, at)
         SELECT kind, key, $3 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS c(kind, key, n)
         ORDER BY n",
    )
    .bind(&kinds)
    .bind(&keys)
    .bind(unix_now())
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    // Delivered to every listening node when the transaction commits (and not if it rolls back).
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANGES_CHANNEL)
        .execute(conn)
        .await
        .map_err(err)?;
    Ok(())
}

/// The `LISTEN/NOTIFY` channel on which a committed change is announced.
const CHANGES_CHANNEL: &str = "tessera_changes";

/// Listen for change announcements on a connection of its own and raise `signal` for each,
/// reconnecting after a failure (and raising it then too: announcements may have been missed).
async fn listen(options: PgConnectOptions, signal: Arc<tokio::sync::Notify>) {
    let mut failing = false;
    loop {
        let connected = async {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANGES_CHANNEL).await?;
            Ok::<_, sqlx::Error>((pool, listener))
        }
        .await;
        let (_pool, mut listener) = match connected {
            Ok(c) => c,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot listen for changes; polling meanwhile");
                    failing = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("listening for changes again");
        }
        signal.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => signal.notify_one(),
                // The connection was lost and will be re-established: read the feed now.
                Ok(None) => signal.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "change notifications lost; reconnecting");
                    break;
                }
            }
        }
    }
}

impl PgStore {
    async fn upsert_grant_once(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<Grant> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let existing = sqlx::query(
                "SELECT * FROM grants WHERE user_id = $1 AND client_id = $2 AND revoked_at IS NULL FOR UPDATE",
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
                        sqlx::query("UPDATE grants SET scope = $1 WHERE id = $2")
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
                        "INSERT INTO grants (id, user_id, client_id, scope, created_at) VALUES ($1, $2, $3, $4, $5)",
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
        })
        .await
    }

    async fn upsert_customer_once(&self, u: &User) -> StoreResult<(User, bool)> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let existing = sqlx::query("SELECT * FROM users WHERE partner_id = $1 AND username = $2 FOR UPDATE")
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
                        "UPDATE users SET password_hash = $1, first_name = $2, last_name = $3, external_id = $4,
                                          signed_up_by = $5
                         WHERE id = $6",
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
        })
        .await
    }

    /// Connect to `url` (`postgres://…`) and apply migrations (one node at a time).
    pub async fn open(url: &str, opts: &crate::Options) -> StoreResult<PgStore> {
        let timeout = opts.timeout.max(Duration::from_millis(100));
        let statement_ms = (timeout.as_millis() as u64).max(100).to_string();
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad PostgreSQL URL: {e}")))?
            .application_name("tessera")
            .options([("statement_timeout", statement_ms.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(opts.pool_size.unwrap_or(10).max(1))
            .min_connections(1)
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| connect_err(e, &options))?;
        let lease_pool = |name: &str| {
            PgPoolOptions::new()
                .max_connections(2)
                .min_connections(0)
                .acquire_timeout(timeout)
                .connect_lazy_with(options.clone().application_name(name))
        };
        let store = PgStore {
            pool,
            budgets: lease_pool("tessera-budgets"),
            requester_budgets: lease_pool("tessera-requester-budgets"),
            timeout,
            listen_options: options.application_name("tessera-listener"),
            signal: std::sync::OnceLock::new(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Bound a store call by the configured timeout.
    async fn timed<T>(&self, f: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(self.timeout, f).await;
        tessera_core::telemetry::db_call("postgres", started);
        answer.unwrap_or_else(|_| {
            tessera_core::telemetry::db_timeout("postgres");
            Err(StoreError::Unavailable(format!(
                "no answer from PostgreSQL within {} ms",
                self.timeout.as_millis()
            )))
        })
    }

    /// One row by a single text key, mapped to its record.
    async fn by_key<T>(
        &self,
        sql: &'static str,
        key: &str,
        map: fn(&PgRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .as_ref()
            .map(map)
            .transpose()
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        raw_sql("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
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
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tracing::info!(version, "applied PostgreSQL migration");
        }
        if newest < crate::release::RELEASE {
            sqlx::query("INSERT INTO schema_release (release) VALUES ($1)")
                .bind(crate::release::RELEASE)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }
}

crate::rows::row_mappers!(PgRow);

async fn insert_user<'c, E>(conn: E, u: &User) -> StoreResult<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    sqlx::query(
        "INSERT INTO users (id, partner_id, account_id, username, role, password_hash,
                            first_name, last_name, external_id, created_at, signed_up_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
/// sessions were deleted. The epoch moves first: a session inserted after this transaction's
/// delete looked copied the old epoch, and is dead.
async fn end_sessions_in(
    conn: &mut PgConnection,
    user_id: &str,
) -> StoreResult<(String, String, u64)> {
    let user: Option<(String, String)> = sqlx::query_as(
        "UPDATE users SET session_epoch = session_epoch + 1 WHERE id = $1
         RETURNING partner_id, username",
    )
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    let Some((partner_id, username)) = user else {
        return Err(StoreError::NotFound("user"));
    };
    let n = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(err)?
        .rows_affected();
    Ok((partner_id, username, n))
}

async fn partner_exists(conn: &mut PgConnection, id: &str) -> StoreResult<bool> {
    Ok(sqlx::query("SELECT 1 FROM partners WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(err)?
        .is_some())
}

#[async_trait]
impl Store for PgStore {
    fn pool_use(&self) -> tessera_core::store::PoolUse {
        tessera_core::store::PoolUse {
            open: self.pool.size(),
            idle: self.pool.num_idle() as u32,
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.timed(async move {
            sqlx::query("SELECT 1")
                .execute(&self.pool)
                .await
                .map_err(err)
                .map(|_| ())
        })
        .await
    }
}

fn admin_scopes_pg(scopes: &[AdminScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
