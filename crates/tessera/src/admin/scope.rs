//! `tessera scope …`: the scope registry.

use super::*;

#[derive(Subcommand, Debug)]
pub enum ScopeCommand {
    /// List registered scopes and their descriptions.
    List {
        #[command(flatten)]
        db: Db,
    },
    /// Register scope names.
    Add {
        #[arg(required = true)]
        names: Vec<String>,
        /// What the scope lets an application do, shown on the consent page.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        db: Db,
    },
}

pub async fn scope(cmd: ScopeCommand) -> anyhow::Result<()> {
    match cmd {
        ScopeCommand::List { db } => {
            let store = db.open().await?;
            print(json!({"scopes": inventory::scopes(store.as_ref()).await?}));
        }
        ScopeCommand::Add {
            names,
            description,
            db,
        } => {
            let store = db.open_or_create().await?;
            let now = unix_now();
            let by = operator();
            let names = ops::scope_names(&names)?;
            let out = ops::add_scopes(store.as_ref(), &by, &names, description.as_deref(), now);
            print_view(&out.await?)?;
        }
    }
    Ok(())
}
