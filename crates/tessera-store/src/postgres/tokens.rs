//! PostgreSQL: refresh-token families (`TokenStore`): start, rotation with its retry grace, reuse
//! detection and revocation.

use super::*;

/// The class of the advisory locks that stand for refresh families (two-key form: a key space
/// apart from the single-key `MIGRATION_LOCK` and `CHANGES_LOCK`), keyed by `hashtext(family id)`. A collision only
/// makes two families wait for each other.
pub(super) const FAMILY_LOCK: i32 = 0x7e55_e4a2;

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

async fn record_revocation(conn: &mut PgConnection, id: &str, until: i64) -> StoreResult<()> {
    record_revocations(conn, &[id.to_string()], until).await
}

/// Record that every id of `ids` is revoked until `until`, with a `Change::Revoked` for each, in
/// a fixed number of statements however many there are (a grant with thousands of families is
/// withdrawn within the statement timeout).
pub(super) async fn record_revocations(
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
