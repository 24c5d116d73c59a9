//! Administration subcommands: parse flags into `tessera_core::operations` inputs (the same
//! operations the admin HTTP API runs), call them on the database directly, print JSON on
//! stdout. Errors go
//! to stderr with a non-zero exit (see `main`). Passwords are read from stdin, never argv.

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

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The file to write; it must not exist.
    #[arg(long)]
    to: std::path::PathBuf,
    #[command(flatten)]
    db: Db,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let bytes = tessera_store::backup_sqlite(&args.db.database, &args.to).await?;
    print_view(&serde_json::json!({"backup": args.to, "bytes": bytes}))?;
    eprintln!(
        "note: the signing keys in the copy are sealed under the master key, which is not in \
         it; keep {}.key (or TESSERA_MASTER_KEY) with the backup",
        tessera_store::sqlite_path(&args.db.database)
            .map_or_else(|| "the database".into(), |p| p.display().to_string())
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct JanitorArgs {
    /// The refresh reuse grace the servers use, in seconds.
    #[arg(long, env = "TESSERA_REFRESH_REUSE_GRACE", default_value_t = tessera_core::policy::REFRESH_REUSE_GRACE)]
    refresh_reuse_grace: i64,
    /// Days audit events are kept.
    #[arg(long, env = "TESSERA_AUDIT_RETENTION_DAYS", default_value_t = tessera_core::policy::AUDIT_RETENTION / 86_400)]
    audit_retention_days: i64,
    /// The refresh family lifetime the servers use, in seconds (it must not be shorter than
    /// theirs: a family row the janitor deletes early is one a withdrawal no longer finds).
    #[arg(long, env = "TESSERA_REFRESH_FAMILY_LIFETIME", default_value_t = tessera_core::policy::REFRESH_FAMILY_LIFETIME)]
    refresh_family_lifetime: i64,
    #[command(flatten)]
    db: Db,
}

pub async fn janitor(args: JanitorArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let started = std::time::Instant::now();
    let deleted = tessera_core::janitor::run(
        store.as_ref(),
        unix_now(),
        tessera_core::janitor::Retention {
            refresh_reuse_grace: args.refresh_reuse_grace,
            family_lifetime: args.refresh_family_lifetime,
            audit: args.audit_retention_days * 86_400,
        },
        std::time::Duration::MAX,
    )
    .await;
    let rows: serde_json::Map<String, serde_json::Value> = deleted
        .iter()
        .map(|(what, n)| (what.as_str().to_string(), json!(n)))
        .collect();
    print(json!({"deleted": rows, "seconds": started.elapsed().as_secs_f64()}));
    Ok(())
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

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// From this time: Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ (UTC), or an age (24h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Before this time (same forms).
    #[arg(long)]
    until: Option<String>,
    #[arg(long)]
    partner: Option<String>,
    /// A username or partner email (compared in lower case).
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    client: Option<String>,
    /// One of: partner.sign_in, partner.sign_in_failed, user.sign_in, user.sign_in_failed,
    /// lockout, token.issued, refresh.reuse_detected, token.revoked, grant.given,
    /// grant.withdrawn, admin.change.
    #[arg(long)]
    event: Option<String>,
    /// Most events printed, 1 to 100000.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Only events older than this event id: the next page, after the `id` of the last line.
    #[arg(long)]
    before: Option<i64>,
    #[command(flatten)]
    db: Db,
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let now = unix_now();
    let at = |s: Option<String>| {
        s.map(|s| tessera_core::calendar::parse_instant(&s, now))
            .transpose()
            .map_err(anyhow::Error::msg)
    };
    if let Some(e) = &args.event
        && Event::parse(e).is_none()
    {
        bail!("unknown event {e:?}; see `tessera audit --help` for the list");
    }
    if !(1..=100_000).contains(&args.limit) {
        bail!("--limit must be between 1 and 100000");
    }
    let query = AuditQuery {
        since: at(args.since)?,
        until: at(args.until)?,
        partner_id: args.partner,
        username: args
            .user
            .map(|u| tessera_core::identity::normalize_username(&u)),
        client_id: args.client,
        event: args.event,
        before: args.before,
        limit: args.limit,
    };
    let store = args.db.open().await?;
    let mut out = std::io::stdout().lock();
    for e in store.query_audit(&query).await? {
        let line = serde_json::to_string(&tessera_core::audit::ShownEvent::from(e))?;
        std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())?;
    }
    Ok(())
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
            let input = ops::CreatePartner {
                name,
                email,
                password: password.to_string(),
                scopes,
                org_code,
            };
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
            allow_registration,
            db,
        } => {
            let store = db.open_or_create().await?;
            let input = ops::CreateClient {
                partner_id: partner,
                name,
                grant_types,
                scopes,
                redirect_uris,
                frame_origins,
                dev,
                pkce_plain: pkce.contains("plain"),
                allow_registration,
            };
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
            let out = ops::add_scopes(store.as_ref(), &by, &names, description.as_deref(), now);
            print_view(&out.await?)?;
        }
    }
    Ok(())
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
