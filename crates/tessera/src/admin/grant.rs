//! `tessera grant …`: users' consents.

use super::*;

#[derive(Subcommand, Debug)]
pub enum GrantCommand {
    /// List the grants of a user or of a client (withdrawn ones too, with `revoked_at`).
    List {
        #[arg(long, required_unless_present = "client", conflicts_with = "client")]
        user: Option<String>,
        #[arg(long)]
        client: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        db: Db,
    },
    /// Revoke a user's consent for a client, with every refresh token issued under it.
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long)]
        client: String,
        #[command(flatten)]
        db: Db,
    },
}

pub async fn grant(cmd: GrantCommand) -> anyhow::Result<()> {
    let (user, client, db) = match cmd {
        GrantCommand::List {
            user,
            client,
            page,
            db,
        } => {
            let store = db.open().await?;
            let of = match (user, client) {
                (Some(user), _) => GrantsOf::User(user),
                (None, Some(client)) => GrantsOf::Client(client),
                (None, None) => bail!("give --user or --client"),
            };
            print_view(&inventory::grants(store.as_ref(), &of, &page.request()).await?)?;
            return Ok(());
        }
        GrantCommand::Revoke { user, client, db } => (user, client, db),
    };
    let store = db.open().await?;
    let now = unix_now();
    print_view(&ops::revoke_grant(store.as_ref(), &operator(), &user, &client, now).await?)?;
    Ok(())
}
