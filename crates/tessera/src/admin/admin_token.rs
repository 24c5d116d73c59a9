//! `tessera admin-token …`: the admin HTTP API's tokens.

use super::*;

#[derive(Subcommand, Debug)]
pub enum AdminTokenCommand {
    /// Create a token for the admin HTTP API (`/admin/v1`), shown once.
    /// Prints {"id", "admin_token", "scopes"}.
    Create {
        /// What the token may do: read (lists, shows, audit), write (creates and changes), or both.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Who or what holds it, for the audit trail and `admin-token list`.
        #[arg(long, default_value = "admin api")]
        name: String,
        #[command(flatten)]
        db: Db,
    },
    /// List admin tokens (never their secrets).
    List {
        #[command(flatten)]
        db: Db,
    },
    /// Revoke an admin token: its next call is refused, on every server.
    Revoke {
        id: String,
        #[command(flatten)]
        db: Db,
    },
}

pub async fn admin_token(cmd: AdminTokenCommand) -> anyhow::Result<()> {
    let now = unix_now();
    match cmd {
        AdminTokenCommand::Create { scopes, name, db } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    tessera_core::model::AdminScope::parse(s.trim())
                        .with_context(|| format!("unknown scope {s:?}: use read, write"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let store = db.open_or_create().await?;
            let by = operator();
            print_view(&ops::create_admin_token(store.as_ref(), &by, &name, &scopes, now).await?)?;
        }
        AdminTokenCommand::List { db } => {
            let store = db.open().await?;
            print(json!({"admin_tokens": ops::list_admin_tokens(store.as_ref()).await?}));
        }
        AdminTokenCommand::Revoke { id, db } => {
            let store = db.open().await?;
            print_view(&ops::revoke_admin_token(store.as_ref(), &operator(), &id, now).await?)?;
        }
    }
    Ok(())
}
