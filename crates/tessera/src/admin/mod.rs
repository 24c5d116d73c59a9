//! Administration subcommands: parse flags into `tessera_core::operations` inputs (the same
//! operations the admin HTTP API runs), call them on the database directly, print JSON on
//! stdout. Errors go to stderr with a non-zero exit (see `main`). Passwords are read from
//! stdin, never argv.
//!
//! One module per noun (`partner`, `client`, `user`, `scope`, `grant`, `keys`, `admin_token`,
//! `audit`, `backup`, `janitor`); this one holds what they share: the `--database` option,
//! paging flags, the operator the audit trail names, and printing.

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use tessera_core::audit::{AuditQuery, Event};
use tessera_core::inventory;
use tessera_core::keys::{Alg, KeyUse};
use tessera_core::model::{PartnerStatus, Role};
use tessera_core::operations as ops;
use tessera_core::password::Passwords;
use tessera_core::store::Store;
use tessera_core::store::{GrantsOf, UserFilter};
use tessera_core::unix_now;
use zeroize::Zeroizing;

use crate::config::DEFAULT_DATABASE;
use crate::master;

mod admin_token;
mod audit;
mod backup;
mod client;
mod grant;
mod janitor;
mod keys;
mod partner;
mod scope;
mod user;

pub use admin_token::{AdminTokenCommand, admin_token};
pub use audit::{AuditArgs, audit};
pub use backup::{BackupArgs, backup};
pub use client::{ClientCommand, client};
pub use grant::{GrantCommand, grant};
pub use janitor::{JanitorArgs, janitor};
pub use keys::{KeysCommand, keys};
pub use partner::{PartnerCommand, partner};
pub use scope::{ScopeCommand, scope};
pub use user::{UserCommand, user};

#[derive(Args, Debug)]
pub struct Db {
    /// Database URL.
    #[arg(long, env = "TESSERA_DATABASE", default_value = DEFAULT_DATABASE, global = true)]
    database: String,
}

impl Db {
    /// The database, which must exist: a mistyped `--database` is an error, not an empty
    /// database created to answer "nothing found".
    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        if let Some(path) = tessera_store::sqlite_path(&self.database)
            && !path.exists()
        {
            anyhow::bail!(
                "no database at {}: check --database (or TESSERA_DATABASE); commands that \
                 create something (scope add, partner create, …) create the database",
                path.display()
            );
        }
        self.open_or_create().await
    }

    /// The database, created and migrated when it does not exist yet: for the commands that
    /// create something, which an operator may run before the first `serve`.
    async fn open_or_create(&self) -> anyhow::Result<Arc<dyn Store>> {
        let options = tessera_store::Options {
            pool_size: Some(2),
            timeout: std::time::Duration::from_secs(5),
        };
        tessera_store::open(&self.database, &options)
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    tessera_store::redact_url(&self.database)
                )
            })
    }
}

/// Which page of a listing: `next` of the previous page as `--after`.
#[derive(Args, Debug)]
pub struct PageArgs {
    /// Start after this id (the `next` of the previous page).
    #[arg(long)]
    after: Option<String>,
    /// Records per page, 1 to 1000 [default: 100].
    #[arg(long)]
    limit: Option<u32>,
}

impl PageArgs {
    fn request(self) -> inventory::PageRequest {
        inventory::PageRequest {
            after: self.after,
            limit: self.limit,
        }
    }
}

/// Who runs this command, for the audit trail: the login that invoked it (through sudo, the
/// user behind it); where no variable names it (a container, cron), the name of the process's
/// user id in `/etc/passwd`, or `uid:N`.
fn operator() -> ops::Operator {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(os_user);
    ops::Operator(format!("cli:{user}"))
}

fn os_user() -> String {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_named(&passwd, uid))
        .unwrap_or_else(|| format!("uid:{uid}"))
}

/// The name of `uid` in a passwd file (`name:x:uid:gid:…`).
fn user_named(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse() == Ok(uid)).then(|| name.to_string())
    })
}

fn print(value: serde_json::Value) {
    println!("{value}");
}

fn print_view(view: &impl serde::Serialize) -> anyhow::Result<()> {
    print(serde_json::to_value(view)?);
    Ok(())
}

fn read_password(flag: bool) -> anyhow::Result<Zeroizing<String>> {
    if !flag {
        bail!("pass --password-stdin and write the password on standard input");
    }
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut buf)
        .context("cannot read the password from stdin")?;
    let pw = buf.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        bail!("no password on stdin");
    }
    Ok(Zeroizing::new(pw))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_user_id_is_named_from_the_passwd_file() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\ntessera:x:10001:10001::/data:/sbin/nologin\n";
        assert_eq!(super::user_named(passwd, 10001).as_deref(), Some("tessera"));
        assert_eq!(super::user_named(passwd, 0).as_deref(), Some("root"));
        assert_eq!(super::user_named(passwd, 5), None);
    }
}
