//! Tessera's storage backends. Each database has its own module and its own migrations folder
//! (`migrations/<backend>/`), and implements the OAuth-shaped traits of `tessera_core::store`;
//! there is no `Any` driver, because SQLite and PostgreSQL differ exactly where it matters
//! (locking, upserts, error codes). [`open`] picks the backend from the database URL.
//!
//! The conformance suite in `tests/conformance.rs` runs the same contract checks against every
//! backend.

mod batch;
pub mod postgres;
pub mod release;
mod rows;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use tessera_core::store::{Store, StoreError};

/// How to connect.
#[derive(Clone, Debug)]
pub struct Options {
    /// Connections in the pool [default: 8].
    pub pool_size: Option<u32>,
    /// How long a request may wait for a connection or a lock before the store answers
    /// `Unavailable`.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool_size: None,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Open (creating and migrating when needed) the database named by `url`.
pub async fn open(url: &str, options: &Options) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::open(url, options).await?))
    } else {
        Err(StoreError::Other(format!(
            "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
            redact_url(url)
        )))
    }
}

/// Copy the SQLite database `url` names to the new file `to`, consistently while servers write
/// to it (`VACUUM INTO`: one read transaction's snapshot, WAL included). The copy holds what the
/// database holds (signing keys sealed under the master key, secrets as digests) and nothing
/// more; it is created with mode 0600. PostgreSQL is backed up with its own tools (`pg_dump`).
/// The copy's size in bytes.
pub async fn backup_sqlite(url: &str, to: &std::path::Path) -> Result<u64, StoreError> {
    use sqlx::Connection;
    if !url.starts_with("sqlite:") {
        return Err(StoreError::Other(
            "tessera backup copies SQLite databases; back PostgreSQL up with pg_dump (README, \
             Running many nodes)"
                .into(),
        ));
    }
    let from = sqlite_path(url)
        .filter(|p| p.exists())
        .ok_or_else(|| StoreError::Other(format!("no SQLite database at {}", redact_url(url))))?;
    // VACUUM INTO writes into a file that does not exist or is empty: made here, private.
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| StoreError::Other(format!("cannot create {}: {e}", to.display())))?;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&from)
        .read_only(true);
    let copied = async {
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        sqlx::query("VACUUM INTO ?")
            .bind(to.to_string_lossy().as_ref())
            .execute(&mut conn)
            .await?;
        conn.close().await
    }
    .await;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(to);
        return Err(StoreError::Other(format!("the backup failed: {e}")));
    }
    std::fs::metadata(to)
        .map(|m| m.len())
        .map_err(|e| StoreError::Other(e.to_string()))
}

/// The URL with any password removed, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..s], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// The file path of a `sqlite://` URL, if it names a file.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(std::path::PathBuf::from(path))
    }
}

/// Test support (feature `test-util`): make an empty database next to the one `admin_url` names (the role needs
/// CREATEDB) and return its URL, so that every test gets a database of its own.
#[cfg(feature = "test-util")]
pub async fn create_scratch_database(admin_url: &str) -> Result<String, StoreError> {
    use sqlx::Connection;
    let mut conn = sqlx::postgres::PgConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let name = format!(
        "tessera_t_{}",
        tessera_core::secret::new_id().replace('-', "")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let (base, _) = admin_url
        .split_once('?')
        .map_or((admin_url, ""), |(b, q)| (b, q));
    let cut = base.rfind('/').unwrap_or(base.len());
    Ok(format!("{}/{name}", &base[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_paths_found() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            sqlite_path("sqlite://data/t.db?mode=rwc"),
            Some("data/t.db".into())
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
