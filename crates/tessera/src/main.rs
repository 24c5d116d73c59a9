//! The `tessera` binary: `tessera serve` runs the authorization server; every other subcommand
//! is an administration command that works on the database directly and prints JSON. The CLI is
//! a thin layer: parsing here (`admin/`, one module per noun), the work in
//! `tessera_core::operations` and `tessera_core::inventory`, storage in `tessera-store`.

mod admin;
mod config;
mod dev;
mod health;
mod master;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's allocator: glibc's malloc/free were ~10% of a token request's CPU
/// in `perf` (bench/run, client_credentials), and its arenas keep freed Argon2 buffers resident.
/// Without transparent huge pages (the `no_thp` feature): with them, memory mimalloc touched
/// was resident in 2 MiB pages, ~10 MB more at rest and at peak for no measurable speed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Give freed memory back to the system now. Run after each Argon2 hash (≈ 19 MiB freed):
/// mimalloc would otherwise keep it for its purge delay, and a sign-in on another thread in
/// that second would add another 19 MiB to the resident peak.
fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointer and only walks mimalloc's own heaps and arenas; it
    // may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[derive(Parser)]
#[command(
    name = "tessera",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TESSERA_COMMIT"), ")"),
    about = "An OAuth 2.x authorization server for partner platforms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve both dialects on one listener.
    Serve(Box<config::ServeArgs>),
    /// Manage partners.
    #[command(subcommand)]
    Partner(admin::PartnerCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(admin::ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage the scope registry.
    #[command(subcommand)]
    Scope(admin::ScopeCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Manage users' consents (grants).
    #[command(subcommand)]
    Grant(admin::GrantCommand),
    /// Manage the admin HTTP API's tokens.
    #[command(subcommand, name = "admin-token")]
    AdminToken(admin::AdminTokenCommand),
    /// Delete now what can never be used again (serve does it every minute); prints the rows
    /// deleted of each kind and the seconds it took.
    Janitor(admin::JanitorArgs),
    /// Read the audit trail, newest first, one JSON object per line.
    Audit(admin::AuditArgs),
    /// Copy a SQLite database to a new file while servers use it (a consistent snapshot);
    /// prints {"backup", "bytes"}. The master key is not in the copy: keep it beside.
    Backup(admin::BackupArgs),
    /// GET a node's /readyz (by default the one TESSERA_LISTEN names, over loopback); exit 0 on
    /// 200. For health checks where there is no shell or curl (the container image).
    Health(health::HealthArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tessera_core::password::after_each_hash(release_freed_memory);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Partner(c) => admin::partner(c).await,
            Command::Client(c) => admin::client(c).await,
            Command::User(c) => admin::user(c).await,
            Command::Scope(c) => admin::scope(c).await,
            Command::Keys(c) => admin::keys(c).await,
            Command::AdminToken(c) => admin::admin_token(c).await,
            Command::Grant(c) => admin::grant(c).await,
            Command::Janitor(a) => admin::janitor(a).await,
            Command::Audit(a) => admin::audit(a).await,
            Command::Backup(a) => admin::backup(a).await,
            Command::Health(a) => health::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
