//! `tessera audit`: read the audit trail.

use super::*;

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
        let line = serde_json::to_string(&tessera_core::audit::AuditEntry::from(e))?;
        std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())?;
    }
    Ok(())
}
