//! `tessera client …`: OAuth clients, their secrets and status.

use super::*;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// List clients (of one partner, or all), a page at a time.
    List {
        #[arg(long)]
        partner: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        db: Db,
    },
    /// One client (never its secret).
    Show {
        client: String,
        #[command(flatten)]
        db: Db,
    },
    /// Register an OAuth client; prints {"client_id", "client_secret"} once.
    Create {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        name: String,
        /// Comma-separated: client_credentials, password, refresh_token, authorization_code,
        /// token_exchange.
        #[arg(long, value_delimiter = ',', required = true)]
        grant_types: Vec<String>,
        #[arg(long)]
        scopes: String,
        /// Registered redirect URI (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Origin allowed to frame the authorization pages (repeatable).
        #[arg(long = "frame-origin")]
        frame_origins: Vec<String>,
        /// The client is in development and may use the debug callback page.
        #[arg(long)]
        dev: bool,
        /// PKCE methods accepted: `s256` (the default) or `s256,plain` (seed 000 lists plain).
        #[arg(long, default_value = "s256", value_parser = ["s256", "s256,plain", "plain,s256"])]
        pkce: String,
        /// Take this client's authorization requests only by reference to one it pushed first
        /// (RFC 9126 PAR): `/authorize` refuses the parameters in the query.
        #[arg(long)]
        require_par: bool,
        /// Let users create an account on Tessera's registration page through this client.
        #[arg(long)]
        allow_registration: bool,
        #[command(flatten)]
        db: Db,
    },
    /// Give a client a new secret, shown once; with --overlap SECONDS the old one keeps working
    /// that long. Prints {"client_id", "client_secret", "previous_secret_valid_until"}.
    RotateSecret {
        #[arg(long)]
        client: String,
        #[arg(long)]
        overlap: Option<i64>,
        #[command(flatten)]
        db: Db,
    },
    /// Disable a client (it authenticates no more and its tokens stop verifying within a
    /// second) or enable it again. Prints {"client_id", "status"}.
    SetStatus {
        #[arg(long)]
        client: String,
        #[arg(long, value_parser = ["active", "disabled"])]
        status: String,
        #[command(flatten)]
        db: Db,
    },
}

pub async fn client(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::List { partner, page, db } => {
            let store = db.open().await?;
            let listed =
                inventory::clients(store.as_ref(), partner.as_deref(), &page.request()).await?;
            print_view(&listed)?;
        }
        ClientCommand::Show { client, db } => {
            let store = db.open().await?;
            print_view(&inventory::client(store.as_ref(), &client).await?)?;
        }
        ClientCommand::Create {
            partner,
            name,
            grant_types,
            scopes,
            redirect_uris,
            frame_origins,
            dev,
            pkce,
            require_par,
            allow_registration,
            db,
        } => {
            let store = db.open_or_create().await?;
            let input = ops::NewClient::try_from(ops::CreateClient {
                partner_id: partner,
                name,
                grant_types,
                scopes,
                redirect_uris,
                frame_origins,
                dev,
                pkce_plain: pkce.contains("plain"),
                require_par,
                allow_registration,
            })?;
            print_view(
                &ops::create_client(store.as_ref(), &operator(), &input, unix_now()).await?,
            )?;
        }
        ClientCommand::RotateSecret {
            client,
            overlap,
            db,
        } => {
            let store = db.open().await?;
            let now = unix_now();
            print_view(
                &ops::rotate_client_secret(store.as_ref(), &operator(), &client, overlap, now)
                    .await?,
            )?;
        }
        ClientCommand::SetStatus { client, status, db } => {
            let store = db.open().await?;
            let status = if status == "disabled" {
                ops::ClientStatus::Disabled
            } else {
                ops::ClientStatus::Active
            };
            let now = unix_now();
            print_view(
                &ops::set_client_status(store.as_ref(), &operator(), &client, status, now).await?,
            )?;
        }
    }
    Ok(())
}
