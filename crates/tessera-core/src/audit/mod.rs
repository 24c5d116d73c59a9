//! The audit trail: one durable record per security event (sign-ins and their failures,
//! lockouts, tokens issued, refresh reuse, revocations, grants given and withdrawn, admin
//! changes), never a password, secret or token: a token is named by its `jti`.
//!
//! The hot path does not wait for the database: [`Auditor::record`] puts the event in a bounded
//! queue, [`Auditor::issued`] a token's on a sharded shelf (see [`TokenIssued`]), and both
//! return; one task per process appends what has queued in one batch (one transaction; on
//! SQLite one fsync) at least every [`FLUSH_EVERY`]. A full queue (the database is far behind)
//! drops the event, counts it (`tessera_audit_dropped_total`) and logs it, rather than slowing
//! requests; a crash loses at most the events of the last flush interval. Each event can also
//! be written as a log line (target `tessera::audit`, off in the default log filter) for log
//! shippers.
//!
//! Where the request came from (client IP, request id) is not passed down through every call:
//! the server sets a [`RequestContext`] for the task serving a request ([`CONTEXT`]), and
//! [`Auditor::record`] reads it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
pub use tessera_proto::admin::AuditEntry;

/// Events queued at most before new ones are dropped: in the channel, and on the `token.issued`
/// shelf.
pub const QUEUE: usize = 65_536;
/// Longest an event waits in the queue (one batch is appended per interval, so that a busy
/// server pays one transaction and one fsync per interval, not one per handful of events).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Most events appended in one batch; a queue holding more is appended without waiting.
pub(crate) const BATCH: usize = 8_192;

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
            self.request_id = c.request_id.as_deref().map(str::to_string);
        });
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }
}

/// A `token.issued` event as a grant makes it: one per token, tens of thousands a second, so
/// it is typed rather than an [`AuditEvent`] with a JSON map: it shares the caller's partner
/// and client (no copy), keeps the IP as an address and the request id shared, and is queued
/// without a box. The store encodes it straight into a compact batch; it reads back as the
/// [`AuditEvent`] that [`TokenIssued::to_event`] gives.
#[derive(Clone)]
pub struct TokenIssued {
    pub at: i64,
    /// Who the token was issued to: its partner and client.
    pub caller: crate::caller::Caller,
    /// The grant type, as the `grant` detail.
    pub grant: &'static str,
    pub subject: String,
    /// The access token's `jti`.
    pub jti: String,
    /// Whether a refresh token came with it.
    pub refresh_token: bool,
    pub ip: Option<IpAddr>,
    pub request_id: Option<Arc<str>>,
    /// Its place in the order events were recorded in, across the shelf's shards.
    seq: u64,
}

impl TokenIssued {
    /// The event for a token issued to `caller` now, in the current request's context.
    pub fn new(
        at: i64,
        caller: &crate::caller::Caller,
        grant: &'static str,
        subject: &str,
        jti: &str,
        refresh_token: bool,
    ) -> TokenIssued {
        let (ip, request_id) = CONTEXT
            .try_with(|c| (c.ip, c.request_id.clone()))
            .unwrap_or_default();
        TokenIssued {
            at,
            caller: caller.clone(),
            grant,
            subject: subject.to_string(),
            jti: jti.to_string(),
            refresh_token,
            ip,
            request_id,
            seq: 0,
        }
    }

    pub fn partner_id(&self) -> &str {
        &self.caller.partner().id
    }

    pub fn client_id(&self) -> &str {
        self.caller.client_id()
    }

    /// The event as a listing shows it (id 0: the store assigns it).
    pub fn to_event(&self) -> AuditEvent {
        AuditEvent {
            ip: self.ip.map(|ip| ip.to_string()),
            request_id: self.request_id.as_deref().map(str::to_string),
            ..AuditEvent::new(Event::TokenIssued, self.at)
                .partner(self.partner_id())
                .client(self.client_id())
                .detail("grant", self.grant)
                .detail("subject", self.subject.as_str())
                .detail("jti", self.jti.as_str())
                .detail("refresh_token", self.refresh_token)
        }
    }
}

/// Names the token by its `jti`, as the audit trail does; the caller by its ids only.
impl std::fmt::Debug for TokenIssued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssued")
            .field("at", &self.at)
            .field("partner_id", &self.partner_id())
            .field("client_id", &self.client_id())
            .field("grant", &self.grant)
            .field("subject", &self.subject)
            .field("jti", &self.jti)
            .field("refresh_token", &self.refresh_token)
            .field("ip", &self.ip)
            .field("request_id", &self.request_id)
            .finish()
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
    /// Shared: a `token.issued` event keeps it without a copy.
    pub request_id: Option<Arc<str>>,
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

mod queue;
pub use queue::Auditor;
