//! The PostgreSQL backend, for many `tessera serve` nodes on one database. Same contracts as
//! SQLite, kept by PostgreSQL's own means: row-level compare-and-swap (`UPDATE … WHERE … RETURNING`
//! re-checks its condition after a concurrent writer commits), a partial unique index for active
//! grants, and a transaction-scoped advisory lock around every change-feed append so that
//! sequence order equals commit order; each append also `NOTIFY`s the nodes listening, so they
//! apply it at once rather than at their next poll. Every call is bounded by the configured timeout on the
//! client side (a dead network path answers `Unavailable` in time), and by `statement_timeout`
//! on the server side.

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
    AccountStore, AdminStore, AttemptStore, AuditStore, AuthorizationStore, ChangeFeed,
    ClientStore, CodeTaking, GrantsOf, InventoryStore, Janitor, KeyStore, PartnerStore, Purge,
    Rotation, ScopeStore, Store, StoreError, StoreResult, Successor, TokenOwner, TokenStore,
    UserFilter, UserStore,
};

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
];

/// Advisory lock keys: one for migrations, one for change-feed appends.
const MIGRATION_LOCK: i64 = 0x7e55_e4a0;
const CHANGES_LOCK: i64 = 0x7e55_e4a1;
/// The class of the advisory locks that stand for refresh families (two-key form: a key space
/// apart from the single-key locks above), keyed by `hashtext(family id)`. A collision only
/// makes two families wait for each other.
const FAMILY_LOCK: i32 = 0x7e55_e4a2;

/// Take the advisory lock of `family_id` until the transaction ends. Every write of a family's
/// tokens (rotation, retry, revocation) holds it first, so they serialize per family without
/// writing a lock into the family's row; a statement after it sees what the holder before it
/// committed.
async fn lock_family(conn: &mut PgConnection, family_id: &str) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(FAMILY_LOCK)
        .bind(family_id)
        .execute(conn)
        .await
        .map_err(err)?;
    Ok(())
}

/// When `family_id` was revoked; `None` when it is live (a family of no grant has a row only
/// once something revoked it).
async fn family_revoked(conn: &mut PgConnection, family_id: &str) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT revoked_at FROM refresh_families WHERE id = $1",
    )
    .bind(family_id)
    .fetch_optional(conn)
    .await
    .map_err(err)?
    .flatten())
}

pub struct PgStore {
    pool: PgPool,
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

/// The columns of a refresh token, in the order [`bind_refresh`] binds them ($1 to $14).
macro_rules! refresh_columns {
    () => {
        "digest, family_id, partner_id, client_id, subject, account_id, scope, issued_at,
         expires_at, family_issued_at, rotated_at, revoked_at, grant_id, actor"
    };
}

/// A family's row, upserted: a new family is inserted; an existing one is locked (waiting for a
/// revocation in flight) and its revoked state returned. The arguments: the placeholders of id,
/// grant and start.
macro_rules! upsert_family {
    ($id:literal, $grant:literal, $start:literal) => {
        concat!(
            "INSERT INTO refresh_families (id, grant_id, issued_at) VALUES (",
            $id,
            ", ",
            $grant,
            ", ",
            $start,
            ") ON CONFLICT (id) DO UPDATE
             SET grant_id = COALESCE(refresh_families.grant_id, excluded.grant_id)
             RETURNING revoked_at"
        )
    };
}

fn bind_refresh<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    t: &'q RefreshToken,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&t.digest.0[..])
        .bind(&t.family_id)
        .bind(&t.partner_id)
        .bind(&t.client_id)
        .bind(&t.subject)
        .bind(&t.account_id)
        .bind(&t.scope)
        .bind(t.issued_at)
        .bind(t.expires_at)
        .bind(t.family_issued_at)
        .bind(t.rotated_at)
        .bind(t.revoked_at)
        .bind(&t.grant_id)
        .bind(
            t.actor
                .as_ref()
                .map(|a| serde_json::to_string(a).expect("an actor serializes")),
        )
}

/// Insert one refresh token: a rotation's successor.
async fn insert_refresh(conn: &mut PgConnection, t: &RefreshToken) -> StoreResult<()> {
    bind_refresh(
        sqlx::query(concat!(
            "INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        )),
        t,
    )
    .execute(conn)
    .await
    .map_err(err)?;
    Ok(())
}

/// Start `family` with its first token `first`, if any, in one statement (see
/// `TokenStore::start_family`; the grant is the caller's to check): `Revoked("family")` when
/// the family was revoked before it started.
async fn start_family_in(
    conn: &mut PgConnection,
    family: &RefreshFamily,
    first: Option<&RefreshToken>,
) -> StoreResult<()> {
    let started = match first {
        Some(t) => {
            bind_refresh(
                sqlx::query(concat!(
                    "WITH family AS (",
                    upsert_family!("$15", "$16", "$17"),
                    ") INSERT INTO refresh_tokens (",
                    refresh_columns!(),
                    ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14
                     FROM family WHERE revoked_at IS NULL"
                )),
                t,
            )
            .bind(&family.id)
            .bind(&family.grant_id)
            .bind(family.issued_at)
            .execute(conn)
            .await
            .map_err(err)?
            .rows_affected()
                == 1
        }
        None => {
            let revoked: Option<i64> = sqlx::query_scalar(upsert_family!("$1", "$2", "$3"))
                .bind(&family.id)
                .bind(&family.grant_id)
                .bind(family.issued_at)
                .fetch_one(conn)
                .await
                .map_err(err)?;
            revoked.is_none()
        }
    };
    if started {
        Ok(())
    } else {
        Err(StoreError::Revoked("family"))
    }
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
        let store = PgStore {
            pool,
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
impl PartnerStore for PgStore {
    async fn revoke_partner_token(
        &self,
        digest: &SecretDigest,
        now: i64,
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
            }
            tx.commit().await.map_err(err)?;
            Ok(partner)
        })
        .await
    }

    async fn revoke_partner_tokens(&self, partner_id: &str, now: i64) -> StoreResult<u64> {
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
            }
            tx.commit().await.map_err(err)?;
            Ok(n)
        })
        .await
    }

    async fn insert_partner(&self, p: &Partner) -> StoreResult<()> {
        self.timed(async move {
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
            .execute(&self.pool)
            .await
            .map_err(err)?;
            Ok(())
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

    async fn set_partner_status(&self, id: &str, status: PartnerStatus) -> StoreResult<()> {
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

    async fn set_partner_password(&self, id: &str, hash: &PasswordHash) -> StoreResult<()> {
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
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn insert_partner_token(
        &self,
        partner_id: &str,
        digest: &SecretDigest,
        now: i64,
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

#[async_trait]
impl AccountStore for PgStore {
    async fn insert_account(&self, a: &Account) -> StoreResult<()> {
        self.timed(async move {
            sqlx::query(
                "INSERT INTO accounts (id, partner_id, name, external_id, created_at) VALUES ($1, $2, $3, $4, $5)",
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
        })
        .await
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
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<()> {
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

    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            if !partner_exists(&mut tx, &c.partner_id).await? {
                return Err(StoreError::NotFound("partner"));
            }
            let grant_types: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
            sqlx::query(
                "INSERT INTO clients (id, partner_id, name, secret_digest, grant_types, scopes,
                                      redirect_uris, frame_origins, dev, pkce_plain,
                                  allow_registration, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
            tx.commit().await.map_err(err)?;
            Ok(id)
        })
        .await
    }

    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        self.timed(async move { insert_user(&self.pool, u).await })
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
    async fn add_scopes(&self, names: &[String], description: Option<&str>) -> StoreResult<()> {
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

#[async_trait]
impl KeyStore for PgStore {
    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.timed(async move {
            sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(key_of)
                .collect()
        })
        .await
    }

    async fn rotate_keys(&self, key: &StoredKey, now: i64) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            // Keys that sign now or signed before stop; a pending key still activates later.
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $1
                 WHERE retired_at IS NULL AND COALESCE(activates_at, created_at) <= $1
                   AND purpose = $2",
            )
            .bind(now)
            .bind(key.purpose.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, created_at, activates_at,
                     purpose)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        })
        .await
    }

    async fn schedule_key(&self, key: &StoredKey, now: i64) -> StoreResult<bool> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            // One scheduler at a time across nodes; readers are not blocked.
            sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM signing_keys WHERE revoked_at IS NULL AND retired_at IS NULL
                   AND COALESCE(activates_at, created_at) > $1 AND purpose = $2",
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        })
        .await
    }

    async fn revoke_key(&self, kid: &str, now: i64) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            let n = sqlx::query(
                "UPDATE signing_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL",
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
        })
        .await
    }
}

#[async_trait]
impl TokenStore for PgStore {
    async fn start_family(
        &self,
        family: &RefreshFamily,
        first: Option<&RefreshToken>,
    ) -> StoreResult<()> {
        self.timed(async move {
            let Some(grant) = &family.grant_id else {
                // A family of no grant (a token exchange's) has a fresh id that nothing can have
                // revoked yet: its first token is the only write, and its row waits until
                // something revokes it.
                let mut conn = self.pool.acquire().await.map_err(err)?;
                return match first {
                    Some(t) => insert_refresh(&mut conn, t).await,
                    None => Ok(()),
                };
            };
            // Lock order: grant (shared: starts under one grant do not wait for each other, a
            // withdrawal's UPDATE waits for them and they for it), then family, then token.
            let mut tx = self.pool.begin().await.map_err(err)?;
            let active: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM grants WHERE id = $1 AND revoked_at IS NULL FOR SHARE",
            )
            .bind(grant)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            if active.is_none() {
                return Err(StoreError::Revoked("grant"));
            }
            start_family_in(&mut tx, family, first).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        owner: &TokenOwner,
        successor: &Successor,
        now: i64,
    ) -> StoreResult<Rotation> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            // The compare-and-swap holds the family's lock before it locks the token's row (a
            // qual is evaluated on the row it scanned, before the row is locked), as every
            // revocation holds it before it touches the family's tokens: a revocation that held
            // it first has revoked this token, which the update then re-reads and skips; one that
            // comes later waits for this commit and then sees the successor.
            let (sql, owner_id) = match owner {
                TokenOwner::Client(id) => (
                    "UPDATE refresh_tokens SET rotated_at = $1, successor_digest = $4
                     WHERE digest = $2 AND client_id = $3 AND rotated_at IS NULL
                       AND revoked_at IS NULL AND expires_at > $1 AND family_issued_at + $5 > $1
                       AND NOT EXISTS (SELECT 1 FROM refresh_families f
                                       WHERE f.id = family_id AND f.revoked_at IS NOT NULL)
                       AND pg_advisory_xact_lock($6, hashtext(family_id)) IS NOT NULL
                     RETURNING *",
                    id,
                ),
                TokenOwner::Partner(id) => (
                    "UPDATE refresh_tokens SET rotated_at = $1, successor_digest = $4
                     WHERE digest = $2 AND partner_id = $3 AND rotated_at IS NULL
                       AND revoked_at IS NULL AND expires_at > $1 AND family_issued_at + $5 > $1
                       AND NOT EXISTS (SELECT 1 FROM refresh_families f
                                       WHERE f.id = family_id AND f.revoked_at IS NOT NULL)
                       AND pg_advisory_xact_lock($6, hashtext(family_id)) IS NOT NULL
                     RETURNING *",
                    id,
                ),
            };
            if let Some(row) = sqlx::query(sql)
                .bind(now)
                .bind(&presented.0[..])
                .bind(owner_id)
                .bind(&successor.digest.0[..])
                .bind(successor.family_lifetime)
                .bind(FAMILY_LOCK)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?
            {
                let mut old = refresh_of(&row)?;
                old.rotated_at = None;
                insert_refresh(&mut tx, &successor_of(&old, successor, now)).await?;
                tx.commit().await.map_err(err)?;
                return Ok(Rotation::Rotated(old));
            }
            // Not rotated. The family's lock first, then the presented row, then its successor:
            // the order every transaction on this family takes, so none can deadlock another.
            let family_id: Option<String> = sqlx::query_scalar(
                "SELECT family_id, pg_advisory_xact_lock($2, hashtext(family_id))::text
                 FROM refresh_tokens WHERE digest = $1",
            )
            .bind(&presented.0[..])
            .bind(FAMILY_LOCK)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?;
            if family_id.is_none() {
                return Ok(Rotation::Unknown);
            }
            let Some(row) =
                sqlx::query("SELECT * FROM refresh_tokens WHERE digest = $1 FOR UPDATE")
                    .bind(&presented.0[..])
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?
            else {
                return Ok(Rotation::Unknown);
            };
            let mut record = refresh_of(&row)?;
            if !owner.owns(&record) {
                return Ok(Rotation::WrongClient);
            }
            // A grant's withdrawal marks its families in its own transaction, so the family's
            // mark is the grant's too.
            let revoked = family_revoked(&mut tx, &record.family_id).await?;
            if revoked.is_none() && is_retry(&record, successor, now) {
                let previous: Option<Vec<u8>> = row.try_get("successor_digest").map_err(err)?;
                if let Some(previous) = previous {
                    // Compare-and-swap on the unused successor (row lock): one retry wins.
                    let replaced = sqlx::query(
                        "UPDATE refresh_tokens SET revoked_at = $1
                         WHERE digest = $2 AND rotated_at IS NULL AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(&previous[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?
                    .rows_affected();
                    if replaced == 1 {
                        sqlx::query(
                            "UPDATE refresh_tokens SET successor_digest = $1 WHERE digest = $2",
                        )
                        .bind(&successor.digest.0[..])
                        .bind(&presented.0[..])
                        .execute(&mut *tx)
                        .await
                        .map_err(err)?;
                        let mut old = record;
                        old.rotated_at = None;
                        insert_refresh(&mut tx, &successor_of(&old, successor, now)).await?;
                        tx.commit().await.map_err(err)?;
                        return Ok(Rotation::Replaced(old));
                    }
                }
            }
            // A revoked family's tokens are revoked with it; say so even of one that was not.
            record.revoked_at = record.revoked_at.or(revoked);
            Ok(Rotation::NotActive(record))
        })
        .await
    }

    async fn refresh_token(&self, digest: &SecretDigest) -> StoreResult<Option<RefreshToken>> {
        self.timed(async move {
            sqlx::query("SELECT * FROM refresh_tokens WHERE digest = $1")
                .bind(&digest.0[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?
                .as_ref()
                .map(refresh_of)
                .transpose()
        })
        .await
    }

    async fn revoke_family(&self, family_id: &str, until: i64, now: i64) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            // The family's lock first (waiting for a rotation in flight), then its mark (waiting
            // for a start in flight, whose upsert holds the row), then its tokens: this last
            // statement's snapshot is taken after those waits, so it sees their writes.
            lock_family(&mut tx, family_id).await?;
            sqlx::query(
                "INSERT INTO refresh_families (id, grant_id, issued_at, revoked_at)
                 VALUES ($1, NULL, $2, $2)
                 ON CONFLICT (id) DO UPDATE
                 SET revoked_at = COALESCE(refresh_families.revoked_at, excluded.revoked_at)",
            )
            .bind(family_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(family_id)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            record_revocation(&mut tx, family_id, until).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn revoke_jti(&self, jti: &str, until: i64) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            record_revocation(&mut tx, jti, until).await?;
            tx.commit().await.map_err(err)
        })
        .await
    }

    async fn active_revocations(&self, now: i64) -> StoreResult<Vec<(String, i64)>> {
        self.timed(async move {
            let rows = sqlx::query("SELECT id, until FROM revocations WHERE until > $1")
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
        })
        .await
    }
}

async fn record_revocation(conn: &mut PgConnection, id: &str, until: i64) -> StoreResult<()> {
    record_revocations(conn, &[id.to_string()], until).await
}

/// Record that every id of `ids` is revoked until `until`, with a `Change::Revoked` for each, in
/// a fixed number of statements however many there are (a grant with thousands of families is
/// withdrawn within the statement timeout).
async fn record_revocations(
    conn: &mut PgConnection,
    ids: &[String],
    until: i64,
) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO revocations (id, until) SELECT unnest($1::text[]), $2
         ON CONFLICT (id) DO UPDATE SET until = GREATEST(revocations.until, excluded.until)",
    )
    .bind(ids)
    .bind(until)
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    let changes: Vec<Change> = ids
        .iter()
        .map(|id| Change::Revoked {
            id: id.clone(),
            until,
        })
        .collect();
    emit_all(conn, &changes).await
}

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

    async fn end_user_sessions(&self, user_id: &str) -> StoreResult<u64> {
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

#[async_trait]
impl AttemptStore for PgStore {
    async fn reserve_attempt(
        &self,
        key: &[u8; 32],
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Result<(), u64>> {
        self.timed(async move {
            // A row for the key, then its lock: every node's reservations of one username queue
            // on that row, so their total never exceeds the allowance.
            let mut tx = self.pool.begin().await.map_err(err)?;
            sqlx::query(
                "INSERT INTO login_attempts (key, level, at) VALUES ($1, 0, $2)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(&key[..])
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            let row = sqlx::query("SELECT level, at FROM login_attempts WHERE key = $1 FOR UPDATE")
                .bind(&key[..])
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            let bucket = Bucket {
                level: row.try_get("level").map_err(err)?,
                at: row.try_get("at").map_err(err)?,
            };
            let next = match lockout::reserve(Some(bucket), now, policy) {
                Ok(next) => next,
                Err(wait) => return Ok(Err(wait)),
            };
            sqlx::query("UPDATE login_attempts SET level = $2, at = $3 WHERE key = $1")
                .bind(&key[..])
                .bind(next.level)
                .bind(next.at)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            tx.commit().await.map_err(err)?;
            Ok(Ok(()))
        })
        .await
    }

    async fn clear_attempts(&self, key: &[u8; 32]) -> StoreResult<()> {
        self.timed(async move {
            sqlx::query("DELETE FROM login_attempts WHERE key = $1")
                .bind(&key[..])
                .execute(&self.pool)
                .await
                .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn prune_attempts(&self, now: i64, policy: &LockoutPolicy) -> StoreResult<u64> {
        self.timed(async move {
            let drained = sqlx::query("DELETE FROM login_attempts WHERE at < $1")
                .bind(lockout::drained_before(now, policy))
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected();
            let max = i64::try_from(policy.max_entries).unwrap_or(i64::MAX);
            let oldest = sqlx::query(
                "DELETE FROM login_attempts WHERE key IN (
                     SELECT key FROM login_attempts ORDER BY at
                     LIMIT GREATEST((SELECT count(*) FROM login_attempts) - $1, 0))",
            )
            .bind(max)
            .execute(&self.pool)
            .await
            .map_err(err)?
            .rows_affected();
            Ok(drained + oldest)
        })
        .await
    }
}

#[async_trait]
impl Janitor for PgStore {
    async fn purge(&self, what: Purge, now: i64, grace: i64, batch: u32) -> StoreResult<u64> {
        let sql = purge_sql(what);
        let (before, revoked_before) = what.cutoffs(now, grace);
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
            // One node at a time: whoever holds the janitor's lock deletes, the others skip.
            let mine: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(JANITOR_LOCK)
                .fetch_one(&mut *tx)
                .await
                .map_err(err)?;
            if !mine {
                return Ok(0);
            }
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
        })
        .await
    }
}

/// The advisory lock the janitors of all nodes take turns on.
const JANITOR_LOCK: i64 = 0x7465_7373_6a61_6e69;

fn purge_sql(what: Purge) -> &'static str {
    match what {
        Purge::PendingRequests => {
            "DELETE FROM authorization_requests WHERE id IN (
                 SELECT id FROM authorization_requests WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::Codes => {
            "DELETE FROM authorization_codes WHERE digest IN (
                 SELECT digest FROM authorization_codes WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::Sessions => {
            "DELETE FROM sessions WHERE digest IN (
                 SELECT digest FROM sessions WHERE expires_at < $1 LIMIT $2)"
        }
        Purge::Revocations => {
            "DELETE FROM revocations WHERE id IN (
                 SELECT id FROM revocations WHERE until < $1 LIMIT $2)"
        }
        Purge::Families => {
            "DELETE FROM refresh_families WHERE id IN (
                 SELECT id FROM refresh_families WHERE issued_at < $1 LIMIT $2)"
        }
        Purge::AuditEvents => {
            "DELETE FROM audit_events WHERE id IN (
                 SELECT id FROM audit_events WHERE at < $1 LIMIT $2)"
        }
        Purge::RefreshTokens => {
            "DELETE FROM refresh_tokens
             WHERE digest IN (SELECT digest FROM refresh_tokens WHERE expires_at < $1 LIMIT $3)
                OR digest IN (SELECT digest FROM refresh_tokens WHERE revoked_at < $2 LIMIT $3)"
        }
    }
}

#[async_trait]
impl ChangeFeed for PgStore {
    async fn latest_change(&self) -> StoreResult<i64> {
        self.timed(async move {
            let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM changes")
                .fetch_one(&self.pool)
                .await
                .map_err(err)?;
            Ok(seq.unwrap_or(0))
        })
        .await
    }

    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<(i64, Change)>> {
        self.timed(async move {
            let rows = sqlx::query(
                "SELECT seq, kind, key FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
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
        })
        .await
    }

    async fn prune_changes(&self, before: i64) -> StoreResult<u64> {
        self.timed(async move {
            Ok(sqlx::query("DELETE FROM changes WHERE at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected())
        })
        .await
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        let signal = self.signal.get_or_init(|| {
            let signal = Arc::new(tokio::sync::Notify::new());
            tokio::spawn(listen(self.listen_options.clone(), Arc::clone(&signal)));
            signal
        });
        Some(Arc::clone(signal))
    }
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

#[async_trait]
impl InventoryStore for PgStore {
    async fn list_partners(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Partner>> {
        self.timed(async move {
            sqlx::query("SELECT * FROM partners WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(err)?
                .iter()
                .map(partner_of)
                .collect()
        })
        .await
    }

    async fn list_clients(
        &self,
        partner_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Client>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM clients WHERE ($1::text IS NULL OR partner_id = $1) AND id > $2
                 ORDER BY id LIMIT $3",
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
        })
        .await
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM users WHERE ($1::text IS NULL OR partner_id = $1)
                   AND ($2::text IS NULL OR account_id = $2) AND ($3::text IS NULL OR role = $3)
                   AND ($4::text IS NULL OR username = $4) AND id > $5
                 ORDER BY id LIMIT $6",
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
        })
        .await
    }

    async fn list_grants_of(
        &self,
        of: &GrantsOf,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Grant>> {
        let (sql, key) = match of {
            GrantsOf::User(id) => (
                "SELECT * FROM grants WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                id,
            ),
            GrantsOf::Client(id) => (
                "SELECT * FROM grants WHERE client_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                id,
            ),
        };
        self.timed(async move {
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

#[async_trait]
impl AdminStore for PgStore {
    async fn insert_admin_token(&self, t: &AdminToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, name, digest, scopes, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.digest.0[..])
        .bind(admin_scopes_pg(&t.scopes))
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn admin_token(&self, digest: &SecretDigest) -> StoreResult<Option<AdminToken>> {
        sqlx::query("SELECT * FROM admin_tokens WHERE digest = $1")
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
            "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
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
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(older_than)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (token_id, key, fingerprint, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
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
            sqlx::query("SELECT * FROM idempotency_keys WHERE token_id = $1 AND key = $2")
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
            "UPDATE idempotency_keys SET status = $1, body = $2 WHERE token_id = $3 AND key = $4",
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
            "DELETE FROM idempotency_keys WHERE token_id = $1 AND key = $2 AND status IS NULL",
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
impl AuditStore for PgStore {
    async fn append_audit(&self, events: &[AuditEvent]) -> StoreResult<()> {
        self.timed(async move {
            let mut tx = self.pool.begin().await.map_err(err)?;
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
        })
        .await
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.timed(async move {
            sqlx::query(
                "SELECT * FROM audit_events WHERE at >= $1 AND at < $2
                   AND ($3::text IS NULL OR partner_id = $3) AND ($4::text IS NULL OR username = $4)
                   AND ($5::text IS NULL OR client_id = $5) AND ($6::text IS NULL OR event = $6)
                   AND id < $8
                 ORDER BY id DESC LIMIT $7",
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
        })
        .await
    }
}
