//! Where the master key (which seals private signing keys) comes from: `TESSERA_MASTER_KEY`
//! (64 hex digits or base64 of 32 bytes), else a key file next to the SQLite database
//! (`<database>.key`, mode 0600), which `serve` and `keys rotate` create when missing.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{Context, bail};
use tessera_core::master::MasterKey;
use zeroize::Zeroizing;

pub const ENV: &str = "TESSERA_MASTER_KEY";

pub fn key_file_for(database: &str) -> Option<PathBuf> {
    tessera_store::sqlite_path(database).map(|p| {
        let mut s = p.into_os_string();
        s.push(".key");
        PathBuf::from(s)
    })
}

pub fn load(database: &str, create: bool) -> anyhow::Result<MasterKey> {
    if let Ok(text) = std::env::var(ENV) {
        let text = Zeroizing::new(text);
        return MasterKey::parse(&text).with_context(|| format!("{ENV} is invalid"));
    }
    let Some(path) = key_file_for(database) else {
        bail!("set {ENV} (64 hex digits): this database has no place for a key file");
    };
    match std::fs::read_to_string(&path).map(Zeroizing::new) {
        Ok(text) => {
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                warn_open_key_file(&path);
            }
            MasterKey::parse(&text)
                .with_context(|| format!("the key file {} is invalid", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let key = MasterKey::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create the key file {}", path.display()))?;
            f.write_all(key.to_hex().as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "created a master key file; back it up with the database");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "no master key: set {ENV} or run `tessera serve` once to create {}",
                path.display()
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the key file {}", path.display())),
    }
}

/// The key file is readable by others: say so in the log when serving, on stderr in the CLI
/// (which has no log).
fn warn_open_key_file(path: &std::path::Path) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!(path = %path.display(), "the master key file is readable by other users; chmod 600 it");
    } else {
        eprintln!(
            "warning: the master key file {} is readable by other users; chmod 600 it",
            path.display()
        );
    }
}
