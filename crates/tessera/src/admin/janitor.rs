//! `tessera janitor`: delete now what can never be used again.

use super::*;

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
