//! `tessera backup`: a consistent copy of a SQLite database while servers use it.

use super::*;

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
