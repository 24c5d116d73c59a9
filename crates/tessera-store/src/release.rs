//! Which releases may share one database during a rolling upgrade.
//!
//! Nodes of release N and N+1 run side by side while a fleet is replaced, so:
//! - a release's migrations only **expand** the schema (new tables, new nullable columns or
//!   columns with a default, new indexes): nothing the previous release reads or writes is
//!   dropped, renamed, retyped or made mandatory. Contracting (dropping what only an older
//!   release used) waits for the release after. [`tests`] checks every migration newer than
//!   the previous release's against that list, for both backends;
//! - each database records the newest release that migrated it (`schema_release`), and a node
//!   refuses to start on a database migrated by a release more than one step newer than its
//!   own, whose contraction it may not survive ([`check`]).
//!
//! At each release: bump [`RELEASE`], and set the `PREVIOUS_*_SCHEMA` constants to the last
//! migration of the release before it.

use tessera_core::store::StoreError;

/// This build's release, counted from 1 (0.1.0, tagged `v0.1.0`).
pub const RELEASE: i64 = 2;

/// The last PostgreSQL migration of the previous release (0.1.0).
pub const PREVIOUS_POSTGRES_SCHEMA: i64 = 12;

/// The last SQLite migration of the previous release (0.1.0).
pub const PREVIOUS_SQLITE_SCHEMA: i64 = 14;

/// The statement that makes the table of releases that migrated the database.
pub(crate) const CREATE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_release (release BIGINT NOT NULL)";

/// May a node of this release run on a database that release `newest` migrated? One release
/// ahead is a rollout in progress (allowed, with a warning); more is refused.
pub fn check(newest: i64) -> Result<(), StoreError> {
    if newest > RELEASE + 1 {
        return Err(StoreError::Other(format!(
            "the database was migrated by release {newest}, more than one release newer than \
             this one ({RELEASE}, {}): run release {} or newer",
            env!("CARGO_PKG_VERSION"),
            newest - 1
        )));
    }
    if newest == RELEASE + 1 {
        tracing::warn!(
            newest,
            this = RELEASE,
            "the next release migrated this database: this node runs beside it for a rolling \
             upgrade; replace it soon"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_release_ahead_runs_and_two_do_not() {
        assert!(check(0).is_ok()); // a database made before releases were recorded
        assert!(check(RELEASE - 1).is_ok());
        assert!(check(RELEASE).is_ok());
        assert!(check(RELEASE + 1).is_ok());
        let refused = check(RELEASE + 2).unwrap_err().to_string();
        assert!(refused.contains("more than one release newer"), "{refused}");
    }

    /// What a migration of this release must not do, for a node of the previous release to
    /// keep working on the migrated database.
    fn contracts(sql: &str) -> Option<String> {
        let upper = sql.to_ascii_uppercase();
        for forbidden in [
            "DROP TABLE",
            "DROP COLUMN",
            "RENAME",
            "ALTER COLUMN",
            "DROP VIEW",
        ] {
            if upper.contains(forbidden) {
                return Some(forbidden.to_string());
            }
        }
        // A new mandatory column without a default breaks the previous release's inserts.
        for statement in upper.split(';') {
            if statement.contains("ADD COLUMN")
                && statement.contains("NOT NULL")
                && !statement.contains("DEFAULT")
            {
                return Some(format!(
                    "ADD COLUMN … NOT NULL without DEFAULT: {statement}"
                ));
            }
        }
        None
    }

    #[test]
    fn this_releases_migrations_only_expand() {
        let ours = crate::postgres::MIGRATIONS
            .iter()
            .filter(|(v, _)| *v > PREVIOUS_POSTGRES_SCHEMA)
            .chain(
                crate::sqlite::MIGRATIONS
                    .iter()
                    .filter(|(v, _)| *v > PREVIOUS_SQLITE_SCHEMA),
            );
        for (version, sql) in ours {
            assert_eq!(
                contracts(sql),
                None,
                "migration {version} contracts the schema"
            );
        }
        // The check itself catches what it must.
        assert!(contracts("ALTER TABLE users DROP COLUMN phone").is_some());
        assert!(contracts("ALTER TABLE users RENAME COLUMN a TO b").is_some());
        assert!(contracts("ALTER TABLE users ADD COLUMN x TEXT NOT NULL").is_some());
        assert!(contracts("ALTER TABLE users ADD COLUMN x TEXT NOT NULL DEFAULT ''").is_none());
        assert!(contracts("ALTER TABLE users ADD COLUMN x TEXT").is_none());
        // Every backend knows the previous release's schema.
        assert!(
            crate::postgres::MIGRATIONS
                .iter()
                .any(|(v, _)| *v == PREVIOUS_POSTGRES_SCHEMA)
        );
        assert!(
            crate::sqlite::MIGRATIONS
                .iter()
                .any(|(v, _)| *v == PREVIOUS_SQLITE_SCHEMA)
        );
    }
}
