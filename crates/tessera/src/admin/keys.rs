//! `tessera keys …`: signing keys.

use super::*;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// List signing keys and their state.
    List {
        #[command(flatten)]
        db: Db,
    },
    /// Revoke a compromised key: it leaves the JWKS and its tokens stop verifying on every
    /// server within a second. When it is the active key, a new key takes over first.
    /// Prints {"kid", "replaced_by"}.
    Revoke {
        kid: String,
        #[command(flatten)]
        db: Db,
    },
    /// Make a new key active; older keys stay published until their tokens have expired.
    Rotate {
        #[arg(long, default_value = "ES256")]
        alg: Alg,
        /// Rotate the OpenID Connect ID-token key (always RS256) instead of the access-token key.
        #[arg(long, conflicts_with = "alg")]
        id_token: bool,
        #[command(flatten)]
        db: Db,
    },
}

pub async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    let now = unix_now();
    match cmd {
        KeysCommand::List { db } => {
            let store = db.open().await?;
            print_view(&ops::list_keys(store.as_ref(), now).await?)?;
        }
        KeysCommand::Revoke { kid, db } => {
            let store = db.open().await?;
            let master = master::load(&db.database, true)?;
            print_view(&ops::revoke_key(store.as_ref(), &operator(), &master, &kid, now).await?)?;
        }
        KeysCommand::Rotate { alg, id_token, db } => {
            let store = db.open_or_create().await?;
            let master = master::load(&db.database, true)?;
            let purpose = if id_token {
                KeyUse::IdToken
            } else {
                KeyUse::Access
            };
            let by = operator();
            let out = ops::rotate_keys(store.as_ref(), &by, &master, purpose, alg, now);
            print_view(&out.await?)?;
        }
    }
    Ok(())
}
