//! The audit trail: one durable record per security event (sign-ins and their failures,
//! lockouts, tokens issued, refresh reuse, revocations, grants given and withdrawn, admin
//! changes), never a password, secret or token: a token is named by its `jti`.
//!
//! The hot path does not wait for the database: [`Auditor::record`] puts the event in a bounded
//! queue and returns; one task per process appends what has queued in one batch (one
//! transaction; on SQLite one fsync) at least every [`FLUSH_EVERY`]. A full queue (the database
//! is far behind) drops the event, counts it (`tessera_audit_dropped_total`) and logs it, rather
//! than slowing requests; a crash loses at most the events of the last flush interval. Each
//! event can also be written as a log line (target `tessera::audit`, off in the default log
//! filter) for log shippers.
//!
//! Where the request came from (client IP, request id) is not passed down through every call:
//! the server sets a [`RequestContext`] for the task serving a request ([`CONTEXT`]), and
//! [`Auditor::record`] reads it.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::store::Store;

/// Events queued at most before new ones are dropped.
pub const QUEUE: usize = 65_536;
/// Longest an event waits in the queue (one batch is appended per interval, so that a busy
/// server pays one transaction and one fsync per interval, not one per handful of events).
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Most events appended in one batch; a queue holding more is appended without waiting.
const BATCH: usize = 8_192;

/// What happened. Stored as its [`Event::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A partner's email and password were checked and matched (not repeated for a pair the
    /// credential cache already verified: `token.issued` records each use).
    PartnerSignIn,
    PartnerSignInFailed,
    /// A user's password was checked and matched (password grant or sign-in page).
    UserSignIn,
    UserSignInFailed,
    /// A password check refused because the username is locked out.
    Lockout,
    TokenIssued,
    RefreshReuseDetected,
    TokenRevoked,
    GrantGiven,
    GrantWithdrawn,
    /// A change made by an operator (CLI or admin API).
    AdminChange,
}

impl Event {
    pub const ALL: [Event; 11] = [
        Event::PartnerSignIn,
        Event::PartnerSignInFailed,
        Event::UserSignIn,
        Event::UserSignInFailed,
        Event::Lockout,
        Event::TokenIssued,
        Event::RefreshReuseDetected,
        Event::TokenRevoked,
        Event::GrantGiven,
        Event::GrantWithdrawn,
        Event::AdminChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::PartnerSignIn => "partner.sign_in",
            Event::PartnerSignInFailed => "partner.sign_in_failed",
            Event::UserSignIn => "user.sign_in",
            Event::UserSignInFailed => "user.sign_in_failed",
            Event::Lockout => "lockout",
            Event::TokenIssued => "token.issued",
            Event::RefreshReuseDetected => "refresh.reuse_detected",
            Event::TokenRevoked => "token.revoked",
            Event::GrantGiven => "grant.given",
            Event::GrantWithdrawn => "grant.withdrawn",
            Event::AdminChange => "admin.change",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One event as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    /// Assigned by the store; 0 before.
    pub id: i64,
    pub at: i64,
    pub event: String,
    pub partner_id: Option<String>,
    /// The username or partner email the event concerns.
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// What else there is to say: a reason, a grant, a `jti`, who made an admin change.
    pub detail: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(event: Event, at: i64) -> AuditEvent {
        AuditEvent {
            id: 0,
            at,
            event: event.as_str().to_string(),
            partner_id: None,
            username: None,
            client_id: None,
            ip: None,
            request_id: None,
            detail: Map::new(),
        }
    }

    pub fn partner(mut self, id: &str) -> Self {
        self.partner_id = Some(id.to_string());
        self
    }

    pub fn username(mut self, name: &str) -> Self {
        self.username = Some(name.to_string());
        self
    }

    pub fn client(mut self, id: &str) -> Self {
        self.client_id = Some(id.to_string());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }
}

/// Which events to read back: every field that is set must match; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// `at >= since`.
    pub since: Option<i64>,
    /// `at < until`.
    pub until: Option<i64>,
    pub partner_id: Option<String>,
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub event: Option<String>,
    pub limit: u32,
}

/// Where the request being served came from, set by the server for the task that serves it.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

tokio::task_local! {
    /// The request the current task serves, if any.
    pub static CONTEXT: RequestContext;
}

enum Message {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// The queue in front of the audit table; cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    queue: mpsc::Sender<Message>,
}

impl Auditor {
    /// Start the task that appends queued events to `store`.
    pub fn start(store: std::sync::Arc<dyn Store>) -> Auditor {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(append(store, rx));
        Auditor { queue }
    }

    /// Queue `event`, with the current request's IP and id; never waits.
    pub fn record(&self, mut event: AuditEvent) {
        let _ = CONTEXT.try_with(|c| {
            event.ip.clone_from(&c.ip);
            event.request_id.clone_from(&c.request_id);
        });
        tracing::info!(
            target: "tessera::audit",
            event = %event.event,
            partner_id = event.partner_id.as_deref(),
            username = event.username.as_deref(),
            client_id = event.client_id.as_deref(),
            ip = event.ip.as_deref(),
            detail = %serde_json::Value::Object(event.detail.clone()),
            "audit"
        );
        if let Err(mpsc::error::TrySendError::Full(_)) =
            self.queue.try_send(Message::Event(Box::new(event)))
        {
            crate::telemetry::audit_dropped();
            tracing::warn!("audit queue full; an event was dropped");
        }
    }

    /// Wait until every event queued before this call is stored (or failed to be).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn append(store: std::sync::Arc<dyn Store>, mut rx: mpsc::Receiver<Message>) {
    let mut batch: Vec<AuditEvent> = Vec::new();
    let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
    let mut messages = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut messages, BATCH).await == 0 {
            return;
        }
        for m in messages.drain(..) {
            match m {
                Message::Event(e) => batch.push(*e),
                Message::Flush(done) => flushed.push(done),
            }
        }
        if !batch.is_empty() {
            let started = std::time::Instant::now();
            if let Err(e) = store.append_audit(&batch).await {
                // One retry after a pause: a busy database usually answers the second time.
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Err(e2) = store.append_audit(&batch).await {
                    tracing::error!(error = %e, retry = %e2, events = batch.len(), "could not store audit events");
                }
            }
            crate::telemetry::audit_appended(batch.len(), started.elapsed().as_secs_f64());
            batch.clear();
        }
        let waiters = !flushed.is_empty();
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
        if !waiters && rx.len() < BATCH {
            tokio::time::sleep(FLUSH_EVERY).await;
        }
    }
}

/// `s` as an instant: Unix seconds, a UTC date `YYYY-MM-DD` or date-time
/// `YYYY-MM-DDTHH:MM:SSZ` (years 1970 to 9999, real calendar days), or an age before `now`
/// (`90s`, `15m`, `24h`, `7d`; at most 100 years).
pub fn parse_instant(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: give Unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or an age \
             such as 24h or 7d"
        )
    };
    const LATEST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if let Ok(secs) = s.parse::<i64>() {
        return (0..=LATEST).contains(&secs).then_some(secs).ok_or_else(bad);
    }
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c)) {
        let n: u32 = s[..s.len() - 1].parse().map_err(|_| bad())?;
        let per = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            _ => 86_400,
        };
        let age = i64::from(n) * per;
        return (age <= 100 * 365 * 86_400)
            .then_some(now - age)
            .ok_or_else(bad);
    }
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [y, m, day] = d[..] else {
        return Err(bad());
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if !(1970..=9999).contains(&y) || !(1..=days_in_month).contains(&day) {
        return Err(bad());
    }
    let secs = match time {
        None => 0,
        Some(t) => {
            let t: Vec<i64> = t
                .split(':')
                .map(|p| p.parse().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            let [h, mi, sec] = t[..] else {
                return Err(bad());
            };
            if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&sec) {
                return Err(bad());
            }
            h * 3_600 + mi * 60 + sec
        }
    };
    Ok(days_from_civil(y, m, day) * 86_400 + secs)
}

/// `at` as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_instant(at: i64) -> String {
    let (days, secs) = (at.div_euclid(86_400), at.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000;

    #[test]
    fn instants_parse_as_seconds_dates_and_ages() {
        assert_eq!(parse_instant("1700000000", NOW), Ok(1_700_000_000));
        assert_eq!(parse_instant("1970-01-01", NOW), Ok(0));
        assert_eq!(parse_instant("2024-02-29", NOW), Ok(1_709_164_800));
        assert_eq!(parse_instant("2026-11-30", NOW), Ok(1795996800));
        assert_eq!(parse_instant("2000-02-29T12:30:05Z", NOW), Ok(951_827_405));
        assert_eq!(parse_instant("24h", NOW), Ok(NOW - 86_400));
        assert_eq!(parse_instant("15m", NOW), Ok(NOW - 900));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-11-30T25:00:00Z",
            "2026-11-30T10:00",
            "h",
        ] {
            assert!(parse_instant(bad, NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn instants_format_and_parse_back() {
        for at in [0, 951_827_405, NOW, 4_102_444_799] {
            assert_eq!(parse_instant(&format_instant(at), NOW), Ok(at));
        }
        assert_eq!(format_instant(951_827_405), "2000-02-29T12:30:05Z");
    }
}
