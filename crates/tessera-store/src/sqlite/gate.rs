//! This process's turn to write. SQLite has one writer at a time, and a connection that finds
//! the write lock taken sleeps in its busy handler and tries again, with no place in a queue:
//! while the group-commit writer (`writer.rs`) commits batch after batch for a client that
//! keeps refreshing, a revocation on another connection could miss every free moment and give
//! up after the busy timeout (a 503 for the revocation, the refreshes carrying on). Every write
//! transaction of the process therefore takes its turn at a first-come, first-served gate
//! first, and `BEGIN IMMEDIATE` after it, so a revocation waits at most for the batch ahead of
//! it. Other processes (the CLI) still meet the busy timeout, as before.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::err;
use tessera_core::store::{StoreError, StoreResult};

/// The gate, shared by the store and its writer task.
#[derive(Clone)]
pub(super) struct WriteGate {
    turn: Arc<Mutex<()>>,
    /// The longest a write waits for its turn: the store's timeout, like the busy timeout.
    wait: Duration,
}

/// A `BEGIN IMMEDIATE` transaction holding the process's turn until it ends; derefs to the
/// connection, as a `Transaction` does.
pub(super) struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _turn: OwnedMutexGuard<()>,
}

impl WriteGate {
    pub(super) fn new(wait: Duration) -> WriteGate {
        WriteGate {
            turn: Arc::new(Mutex::new(())),
            wait,
        }
    }

    /// Wait for this process's turn (tokio's mutex queues its waiters in order), then begin.
    pub(super) async fn begin(&self, pool: &SqlitePool) -> StoreResult<WriteTx> {
        let turn = tokio::time::timeout(self.wait, Arc::clone(&self.turn).lock_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no turn to write within {} ms: the database is busy",
                    self.wait.as_millis()
                ))
            })?;
        let tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(err)?;
        Ok(WriteTx { tx, _turn: turn })
    }
}

impl WriteTx {
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}
