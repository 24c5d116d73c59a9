//! The SQLite backend's write path for refresh tokens: the group-commit writer task, through
//! which every refresh-token insert and rotation passes (one transaction and one fsync per batch),
//! and the background WAL checkpointer that keeps checkpoints off that path.

use std::time::Duration;

use sqlx::sqlite::SqlitePool;
use sqlx::{Row, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::gate::WriteGate;
use super::{err, refresh_of};
use crate::rows::{is_retry, successor_of};
use tessera_core::model::{RefreshFamily, RefreshToken};
use tessera_core::secret::SecretDigest;
use tessera_core::store::{Rotation, StoreError, StoreResult, Successor, TokenOwner};

/// WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside whichever commit
/// crosses 1000 pages; on a large database that commit then writes back scattered B-tree pages
/// and fsyncs them while every queued write waits (bench/run --scale: token-exchange p99 840 ms
/// with 10M refresh tokens). A PASSIVE checkpoint every 250 ms from this task never blocks
/// writers; it ends when the store is dropped (its write queue's sender goes away).
pub(super) async fn checkpointer(pool: SqlitePool, store_alive: mpsc::WeakSender<Write>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if store_alive.upgrade().is_none() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %e, "WAL checkpoint skipped");
        }
    }
}

/// One refresh-token write, queued for the writer task.
pub(super) enum Write {
    Start(
        RefreshFamily,
        Option<Box<RefreshToken>>,
        oneshot::Sender<StoreResult<()>>,
    ),
    Rotate {
        presented: SecretDigest,
        owner: TokenOwner,
        successor: Successor,
        now: i64,
        reply: oneshot::Sender<StoreResult<Rotation>>,
    },
}

/// Most writes committed together.
pub(super) const MAX_BATCH: usize = 256;

/// Group commit. SQLite has one writer at a time and each commit pays an fsync (≈ 130 µs here),
/// so family starts and rotations, the writes on the hot paths, go through this task: it
/// takes whatever is queued, runs it in one `BEGIN IMMEDIATE` transaction in arrival order (each
/// rotation still a compare-and-swap, now against the batch's earlier writes too), commits, and
/// only then answers every caller. Durability is unchanged; one fsync serves the whole batch.
pub(super) async fn writer(pool: SqlitePool, gate: WriteGate, mut queue: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        run_batch(&pool, &gate, &mut batch).await;
    }
}

pub(super) enum Outcome {
    Insert(StoreResult<()>),
    Rotate(Box<StoreResult<Rotation>>),
}

pub(super) async fn run_batch(pool: &SqlitePool, gate: &WriteGate, batch: &mut Vec<Write>) {
    let result: StoreResult<Vec<Outcome>> = async {
        let mut tx = gate.begin(pool).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for w in batch.iter() {
            outcomes.push(match w {
                Write::Start(family, first, _) => {
                    Outcome::Insert(start_in(&mut tx, family, first.as_deref()).await)
                }
                Write::Rotate {
                    presented,
                    owner,
                    successor,
                    now,
                    ..
                } => Outcome::Rotate(Box::new(
                    rotate_in(&mut tx, presented, owner, successor, *now).await,
                )),
            });
        }
        tx.commit().await.map_err(err)?;
        Ok(outcomes)
    }
    .await;
    match result {
        Ok(outcomes) => {
            for (w, o) in batch.drain(..).zip(outcomes) {
                match (w, o) {
                    (Write::Start(_, _, reply), Outcome::Insert(r)) => {
                        let _ = reply.send(r);
                    }
                    (Write::Rotate { reply, .. }, Outcome::Rotate(r)) => {
                        let _ = reply.send(*r);
                    }
                    _ => unreachable!("outcomes follow the batch's order"),
                }
            }
        }
        Err(e) => {
            // Nothing was committed: every caller gets the error.
            let message = e.to_string();
            let failed = || match &e {
                StoreError::Unavailable(_) => StoreError::Unavailable(message.clone()),
                _ => StoreError::Other(message.clone()),
            };
            for w in batch.drain(..) {
                match w {
                    Write::Start(_, _, reply) => {
                        let _ = reply.send(Err(failed()));
                    }
                    Write::Rotate { reply, .. } => {
                        let _ = reply.send(Err(failed()));
                    }
                }
            }
        }
    }
}

/// Start a family (see `TokenStore::start_family`): the checks and the writes in the caller's
/// transaction, which is the database's only writer, so no revocation can fall between them. A
/// refused start writes nothing (the upsert of a revoked family changes no value).
pub(super) async fn start_in(
    conn: &mut SqliteConnection,
    family: &RefreshFamily,
    first: Option<&RefreshToken>,
) -> StoreResult<()> {
    let Some(grant) = &family.grant_id else {
        // A family of no grant (a token exchange's) has a fresh id that nothing can have revoked
        // yet: its first token is the only write, and its row waits until something revokes it.
        return match first {
            Some(t) => insert_refresh_in(conn, t).await,
            None => Ok(()),
        };
    };
    let active: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM grants WHERE id = ? AND revoked_at IS NULL")
            .bind(grant)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?;
    if active.is_none() {
        return Err(StoreError::Revoked("grant"));
    }
    // A new family is inserted; one revoked before it started (a code presented twice at once)
    // has a row already, whose revoked state refuses the start.
    let revoked: Option<i64> = sqlx::query_scalar(
        "INSERT INTO refresh_families (id, grant_id, issued_at) VALUES (?, ?, ?)
         ON CONFLICT (id) DO UPDATE
         SET grant_id = coalesce(refresh_families.grant_id, excluded.grant_id)
         RETURNING revoked_at",
    )
    .bind(&family.id)
    .bind(&family.grant_id)
    .bind(family.issued_at)
    .fetch_one(&mut *conn)
    .await
    .map_err(err)?;
    if revoked.is_some() {
        return Err(StoreError::Revoked("family"));
    }
    if let Some(t) = first {
        insert_refresh_in(conn, t).await?;
    }
    Ok(())
}

pub(super) async fn insert_refresh_in(
    conn: &mut SqliteConnection,
    t: &RefreshToken,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (digest, family_id, partner_id, client_id, subject, account_id,
             scope, issued_at, expires_at, family_issued_at, rotated_at, revoked_at, grant_id,
             actor)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
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
    .execute(&mut *conn)
    .await
    .map_err(err)?;
    Ok(())
}

pub(super) async fn rotate_in(
    conn: &mut SqliteConnection,
    presented: &SecretDigest,
    owner: &TokenOwner,
    successor: &Successor,
    now: i64,
) -> StoreResult<Rotation> {
    // The family's revoked state, read in this transaction (the database's only writer, so no
    // revocation falls between it and the writes below). A grant's withdrawal marks its families
    // in its own transaction, so the family's mark is the grant's too; a family of no grant has
    // a row only once something revoked it. `None`: unknown token; `Some(None)`: live.
    let family: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT f.revoked_at FROM refresh_tokens t LEFT JOIN refresh_families f ON f.id = t.family_id
         WHERE t.digest = ?",
    )
    .bind(&presented.0[..])
    .fetch_optional(&mut *conn)
    .await
    .map_err(err)?;
    let live = family == Some(None);
    let (sql, owner_id) = match owner {
        TokenOwner::Client(id) => (
            "UPDATE refresh_tokens SET rotated_at = ?1, successor_digest = ?4
             WHERE digest = ?2 AND client_id = ?3 AND rotated_at IS NULL
               AND revoked_at IS NULL AND expires_at > ?1 AND family_issued_at + ?5 > ?1
             RETURNING *",
            id,
        ),
        TokenOwner::Partner(id) => (
            "UPDATE refresh_tokens SET rotated_at = ?1, successor_digest = ?4
             WHERE digest = ?2 AND partner_id = ?3 AND rotated_at IS NULL
               AND revoked_at IS NULL AND expires_at > ?1 AND family_issued_at + ?5 > ?1
             RETURNING *",
            id,
        ),
    };
    if live
        && let Some(row) = sqlx::query(sql)
            .bind(now)
            .bind(&presented.0[..])
            .bind(owner_id)
            .bind(&successor.digest.0[..])
            .bind(successor.family_lifetime)
            .fetch_optional(&mut *conn)
            .await
            .map_err(err)?
    {
        let mut old = refresh_of(&row)?;
        old.rotated_at = None;
        insert_refresh_in(conn, &successor_of(&old, successor, now)).await?;
        return Ok(Rotation::Rotated(old));
    }
    let Some(row) = sqlx::query("SELECT * FROM refresh_tokens WHERE digest = ?")
        .bind(&presented.0[..])
        .fetch_optional(&mut *conn)
        .await
        .map_err(err)?
    else {
        return Ok(Rotation::Unknown);
    };
    let mut record = refresh_of(&row)?;
    if !owner.owns(&record) {
        return Ok(Rotation::WrongClient);
    }
    if live && is_retry(&record, successor, now) {
        let previous: Option<Vec<u8>> = row.try_get("successor_digest").map_err(err)?;
        if let Some(previous) = previous {
            // Compare-and-swap on the unused successor: of concurrent retries one wins.
            let replaced = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = ?1
                 WHERE digest = ?2 AND rotated_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&previous[..])
            .execute(&mut *conn)
            .await
            .map_err(err)?
            .rows_affected();
            if replaced == 1 {
                sqlx::query("UPDATE refresh_tokens SET successor_digest = ?1 WHERE digest = ?2")
                    .bind(&successor.digest.0[..])
                    .bind(&presented.0[..])
                    .execute(&mut *conn)
                    .await
                    .map_err(err)?;
                let mut old = record;
                old.rotated_at = None;
                insert_refresh_in(conn, &successor_of(&old, successor, now)).await?;
                return Ok(Rotation::Replaced(old));
            }
        }
    }
    // A revoked family's tokens are revoked with it; say so even of one that was not.
    record.revoked_at = record.revoked_at.or(family.flatten());
    Ok(Rotation::NotActive(record))
}
