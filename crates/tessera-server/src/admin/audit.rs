//! `/admin/v1/audit`: the audit trail.

use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditParams {
    since: Option<String>,
    until: Option<String>,
    partner: Option<String>,
    user: Option<String>,
    client: Option<String>,
    event: Option<String>,
    /// The `next` of the previous page: events older than this id.
    before: Option<i64>,
    limit: Option<u32>,
}

/// The audit trail, newest first: `?since=&until=` (Unix seconds, `YYYY-MM-DD`, RFC 3339 UTC,
/// or an age such as `24h`), `partner`, `user`, `client`, `event`, `limit` (1–1000); the next
/// page is `before=<next>` (an event id, so events of one second are never skipped).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(AuditParams), responses((status = 200, description = "Events, newest first", body = tessera_proto::admin::AuditPage)))]
pub(super) async fn audit(State(app): State<AppState>, q: QueryOf<AuditParams>) -> Answer {
    let q = query(q)?;
    let now = unix_now();
    let at = |s: &Option<String>| {
        s.as_deref()
            .map(|s| tessera_core::calendar::parse_instant(s, now))
            .transpose()
            .map_err(|e| Problem::BadRequest(e.to_string()))
    };
    if let Some(e) = &q.event
        && tessera_core::audit::Event::parse(e).is_none()
    {
        return Err(Problem::BadRequest(format!("unknown event {e:?}")));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::Admin(
            tessera_core::operations::AdminError::Invalid("limit must be 1 to 1000".into()),
        ));
    }
    let query = AuditQuery {
        since: at(&q.since)?,
        until: at(&q.until)?,
        partner_id: q.partner,
        username: q
            .user
            .map(|u| tessera_core::identity::normalize_username(&u)),
        client_id: q.client,
        event: q.event,
        before: q.before,
        limit,
    };
    let events = admin(&app)?.store.query_audit(&query).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    let items = events.into_iter().map(Into::into).collect();
    ok(tessera_proto::admin::AuditPage { items, next })
}
