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
pub use tessera_proto::admin::AuditEntry;
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
    /// A read through the admin API (every call is recorded; writes as `admin.change`).
    AdminRead,
}

impl Event {
    pub const ALL: [Event; 12] = [
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
        Event::AdminRead,
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
            Event::AdminRead => "admin.read",
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

/// An event as the CLI and the admin API show it ([`AuditEntry`]): the stored fields and its
/// time in RFC 3339 UTC.
impl From<AuditEvent> for AuditEntry {
    fn from(e: AuditEvent) -> AuditEntry {
        AuditEntry {
            time: crate::calendar::format_instant(e.at),
            id: e.id,
            at: e.at,
            event: e.event,
            partner_id: e.partner_id,
            username: e.username,
            client_id: e.client_id,
            ip: e.ip,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
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

    /// With the IP and id of the request the current task serves, if it serves one.
    pub fn in_request_context(mut self) -> Self {
        let _ = CONTEXT.try_with(|c| {
            self.ip = c.ip.map(|ip| ip.to_string());
            self.request_id.clone_from(&c.request_id);
        });
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
    /// `id < before`: the next page of a listing, newest first (the `id` of its last event).
    pub before: Option<i64>,
    pub limit: u32,
}

/// Where the request being served came from, set by the server for the task that serves it.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub ip: Option<std::net::IpAddr>,
    pub request_id: Option<String>,
}

tokio::task_local! {
    /// The request the current task serves, if any.
    pub static CONTEXT: RequestContext;
}

/// The key a per-requester budget counts `ip` under: the IPv4 address, or the /64 of an IPv6
/// one (a single host commonly holds a whole /64, so counting its addresses one by one would
/// give it 2^64 budgets).
pub fn requester_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The requester key of the request the current task serves, if it serves one.
pub fn current_requester() -> Option<String> {
    CONTEXT.try_with(|c| c.ip.map(requester_key)).ok().flatten()
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
    pub fn record(&self, event: AuditEvent) {
        let event = event.in_request_context();
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
