//! `tessera user …`: users, their passwords and browser sessions.

use super::*;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// List users, a page at a time; every filter given must match.
    List {
        #[arg(long)]
        partner: Option<String>,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        role: Option<Role>,
        /// Exactly this username (compared in lower case).
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        page: PageArgs,
        #[command(flatten)]
        db: Db,
    },
    /// One user.
    Show {
        user: String,
        #[command(flatten)]
        db: Db,
    },
    /// Create a user; prints {"user_id"}.
    Create {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        username: String,
        /// Read the password from stdin (required).
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        role: Role,
        /// The account of a `member` user.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        db: Db,
    },
    /// Replace a user's password (read from stdin) and end their browser sessions; prints
    /// {"user_id"}.
    SetPassword {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        username: String,
        /// Read the password from stdin (required).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        db: Db,
    },
    /// A user's browser sessions.
    Sessions {
        #[command(subcommand)]
        cmd: UserSessionsCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserSessionsCommand {
    /// End every browser session of a user (a new sign-in is needed at the next `/authorize`);
    /// prints {"user_id", "sessions"}.
    Revoke {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        username: String,
        #[command(flatten)]
        db: Db,
    },
}

pub async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::List {
            partner,
            account,
            role,
            username,
            page,
            db,
        } => {
            let store = db.open().await?;
            let filter = UserFilter {
                partner_id: partner,
                account_id: account,
                role,
                username,
            };
            print_view(&inventory::users(store.as_ref(), filter, &page.request()).await?)?;
        }
        UserCommand::Show { user, db } => {
            let store = db.open().await?;
            print_view(&inventory::user(store.as_ref(), &user).await?)?;
        }
        UserCommand::Create {
            partner,
            username,
            password_stdin,
            role,
            account,
            db,
        } => {
            let password = read_password(password_stdin)?;
            let store = db.open_or_create().await?;
            let input = ops::CreateUser {
                partner_id: partner,
                username,
                password: password.to_string(),
                role,
                account_id: account,
            };
            let passwords = Passwords::new();
            let out = ops::create_user(store.as_ref(), &passwords, &operator(), &input, unix_now())
                .await?;
            print_view(&out)?;
        }
        UserCommand::SetPassword {
            partner,
            username,
            password_stdin,
            db,
        } => {
            let password = read_password(password_stdin)?;
            let store = db.open().await?;
            let out = ops::set_user_password(
                store.as_ref(),
                &Passwords::new(),
                &operator(),
                &partner,
                &username,
                &password,
                unix_now(),
            )
            .await?;
            print_view(&out)?;
        }
        UserCommand::Sessions {
            cmd:
                UserSessionsCommand::Revoke {
                    partner,
                    username,
                    db,
                },
        } => {
            let store = db.open().await?;
            let out = ops::end_user_sessions(
                store.as_ref(),
                &operator(),
                &partner,
                &username,
                unix_now(),
            )
            .await?;
            print_view(&out)?;
        }
    }
    Ok(())
}
