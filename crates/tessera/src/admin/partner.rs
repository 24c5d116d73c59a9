//! `tessera partner …`: partners, their passwords and their API tokens.

use super::*;

#[derive(Subcommand, Debug)]
pub enum PartnerCommand {
    /// List partners, a page at a time; prints {"items": [...], "next"}.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        db: Db,
    },
    /// One partner.
    Show {
        partner: String,
        #[command(flatten)]
        db: Db,
    },
    /// Create a partner; prints {"partner_id", "org_code"}.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
        /// Allowed scopes, comma- or space-separated; each must be registered.
        #[arg(long)]
        scopes: String,
        #[arg(long)]
        org_code: Option<String>,
        #[command(flatten)]
        db: Db,
    },
    /// Activate or deactivate a partner.
    SetStatus {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        status: PartnerStatus,
        #[command(flatten)]
        db: Db,
    },
    /// Replace a partner's password (read from stdin); running servers drop the old one within
    /// a second. Prints {"partner_id"}.
    SetPassword {
        #[arg(long)]
        partner: String,
        /// Read the password from stdin (required).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: Db,
    },
    /// Partner API tokens.
    #[command(subcommand)]
    Token(PartnerTokenCommand),
}

#[derive(Subcommand, Debug)]
pub enum PartnerTokenCommand {
    /// Create a partner API token; prints {"partner_token"} once.
    Create {
        #[arg(long)]
        partner: String,
        #[command(flatten)]
        db: Db,
    },
    /// Revoke a leaked token (its value read from stdin), or every token of a partner; prints
    /// {"revoked": N}. Running servers refuse it within a second.
    Revoke {
        /// Read the token from stdin.
        #[arg(long, conflicts_with_all = ["partner", "all"], required_unless_present = "all")]
        token_stdin: bool,
        /// With --all: the partner whose tokens to revoke.
        #[arg(long, requires = "all")]
        partner: Option<String>,
        /// Revoke every token of --partner.
        #[arg(long, requires = "partner")]
        all: bool,
        #[command(flatten)]
        db: Db,
    },
}

pub async fn partner(cmd: PartnerCommand) -> anyhow::Result<()> {
    match cmd {
        PartnerCommand::List { page, db } => {
            let store = db.open().await?;
            print_view(&inventory::partners(store.as_ref(), &page.request()).await?)?;
        }
        PartnerCommand::Show { partner, db } => {
            let store = db.open().await?;
            print_view(&inventory::partner(store.as_ref(), &partner).await?)?;
        }
        PartnerCommand::Create {
            name,
            email,
            password_stdin,
            scopes,
            org_code,
            db,
        } => {
            let password = read_password(password_stdin)?;
            let store = db.open_or_create().await?;
            let input = ops::NewPartner::try_from(ops::CreatePartner {
                name,
                email,
                password: password.to_string(),
                scopes,
                org_code,
            })?;
            let out = ops::create_partner(
                store.as_ref(),
                &Passwords::new(),
                &operator(),
                &input,
                unix_now(),
            )
            .await;
            print_view(&out?)?;
        }
        PartnerCommand::SetStatus {
            partner,
            status,
            db,
        } => {
            let store = db.open().await?;
            let now = unix_now();
            print_view(
                &ops::set_partner_status(store.as_ref(), &operator(), &partner, status, now)
                    .await?,
            )?;
        }
        PartnerCommand::SetPassword {
            partner,
            password_stdin,
            db,
        } => {
            let password = read_password(password_stdin)?;
            let store = db.open().await?;
            let now = unix_now();
            print_view(
                &ops::set_partner_password(
                    store.as_ref(),
                    &Passwords::new(),
                    &operator(),
                    &partner,
                    &password,
                    now,
                )
                .await?,
            )?;
        }
        PartnerCommand::Token(PartnerTokenCommand::Create { partner, db }) => {
            let store = db.open().await?;
            let now = unix_now();
            print_view(
                &ops::create_partner_token(store.as_ref(), &operator(), &partner, now).await?,
            )?;
        }
        PartnerCommand::Token(PartnerTokenCommand::Revoke {
            token_stdin,
            partner,
            all: _,
            db,
        }) => {
            let store = db.open().await?;
            let token = match partner {
                Some(_) => None,
                None => Some(read_password(token_stdin)?),
            };
            let which = match (&partner, &token) {
                (Some(p), _) => ops::PartnerTokens::AllOf(p),
                (None, Some(t)) => ops::PartnerTokens::One(t),
                (None, None) => unreachable!("a token was read"),
            };
            let now = unix_now();
            print_view(
                &ops::revoke_partner_tokens(store.as_ref(), &operator(), which, now).await?,
            )?;
        }
    }
    Ok(())
}
