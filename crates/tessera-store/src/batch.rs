//! Token events in compact batches, shared by the backends.
//!
//! `token.issued` is the one event per token, tens of thousands a second: stored as a row each
//! (with its JSON detail and three index entries) it cost a busy server more than a tenth of its
//! throughput. The engine queues it typed ([`TokenIssued`]: no JSON map, almost no allocation),
//! and the events of one flush are encoded straight into one `audit_batches` row, each event as
//! varints and strings that say when they repeat. Each event keeps an id of the audit trail's
//! one id space, so a listing merges batches and rows newest first and pages them with one
//! `before` cursor ([`listing`]). Every other event is a row (events written with an admin
//! change commit with the change).
//!
//! Format (version 2): the version, the event count, then per event: id − previous id (the
//! first from `first_id`), `at` − previous `at` (zigzag), then `event`, `partner_id`,
//! `username`, `client_id`, `ip`, `request_id` and the detail (entry count, then each key and
//! typed value) where each string is 0 (absent), 1 (the same as the previous event's in that
//! place: no hashing, and a token's partner, client, grant and subject repeat), 2 and the
//! string, or 3 and the 16 bytes of a UUID in its lowercase hyphenated form (the `jti` and the
//! request id, 37 bytes each as text, were most of an event and of what the batch costs to
//! write). Varints are LEB128. Version 1, which release 0.2.0's first batches were written in,
//! is version 2 without the UUID form, and is read as such.

use std::future::Future;

use serde_json::{Map, Value};
use tessera_core::audit::{AuditEvent, AuditQuery, Event, TokenIssued};
use tessera_core::store::StoreResult;

use crate::rows::bad_row;

/// The error of a batch that does not decode.
fn damaged() -> tessera_core::store::StoreError {
    bad_row("audit batch")
}

/// The `event` of the row in `audit_events` that holds a batch's ids.
pub(crate) const MARKER: &str = "token.issued.batch";

/// Most events in one batch.
pub(crate) const MOST: usize = 8_192;

/// Batches read from the database at a time while a listing looks for its page.
pub(crate) const PAGE: i64 = 8;

/// One batch as stored: `id` is its newest event's (and its marker row's).
pub(crate) struct Batch {
    pub id: i64,
    pub first_id: i64,
    pub min_at: i64,
    pub max_at: i64,
    pub count: i64,
    pub records: Vec<u8>,
}

impl Batch {
    /// The `detail` of the batch's marker row in `audit_events` (what a release that knows no
    /// batches lists for it).
    pub fn marker_detail(&self) -> String {
        format!("{{\"count\":{}}}", self.count)
    }
}

/// Encode `events` (oldest first) with their `ids` (ascending, one each).
pub(crate) fn encode(events: &[TokenIssued], ids: &[i64]) -> Batch {
    assert_eq!(events.len(), ids.len(), "one id per event");
    assert!(!events.is_empty(), "a batch holds at least one event");
    let mut records = Vec::with_capacity(events.len() * 96 + 8);
    records.push(VERSION);
    varint(&mut records, events.len() as u64);
    let mut before: Option<&TokenIssued> = None;
    // `at` is written as the difference from the previous event's, the first from the batch's
    // earliest (events of one flush need not be in time order).
    let min_at = events.iter().map(|e| e.at).min().unwrap_or(events[0].at);
    let (mut id, mut at) = (ids[0], min_at);
    let event = Event::TokenIssued.as_str();
    for (e, &next) in events.iter().zip(ids) {
        varint(&mut records, (next - id) as u64);
        varint(&mut records, zigzag(e.at - at));
        (id, at) = (next, e.at);
        let was = |f: fn(&TokenIssued) -> &str| before.map(f);
        text(&mut records, Some(event), before.map(|_| event));
        text(
            &mut records,
            Some(e.partner_id()),
            was(TokenIssued::partner_id),
        );
        text(&mut records, None, None);
        text(
            &mut records,
            Some(e.client_id()),
            was(TokenIssued::client_id),
        );
        match e.ip {
            Some(ip) if before.is_some_and(|b| b.ip == Some(ip)) => records.push(1),
            Some(ip) => text(&mut records, Some(&ip.to_string()), None),
            None => records.push(0),
        }
        text(
            &mut records,
            e.request_id.as_deref(),
            before.and_then(|b| b.request_id.as_deref()),
        );
        // The detail in the order a listing's map iterates it (by key), each key the same as
        // the previous event's in its place.
        varint(&mut records, 4);
        let first = before.is_none();
        let key = |records: &mut Vec<u8>, k: &str| {
            text(records, Some(k), (!first).then_some(k));
        };
        key(&mut records, "grant");
        records.push(4);
        text(&mut records, Some(e.grant), was(|b| b.grant));
        key(&mut records, "jti");
        records.push(4);
        text(&mut records, Some(&e.jti), was(|b| &b.jti));
        key(&mut records, "refresh_token");
        records.push(if e.refresh_token { 2 } else { 1 });
        key(&mut records, "subject");
        records.push(4);
        text(&mut records, Some(&e.subject), was(|b| &b.subject));
        before = Some(e);
    }
    Batch {
        id: ids[ids.len() - 1],
        first_id: ids[0],
        min_at,
        max_at: events.iter().map(|e| e.at).max().unwrap_or(min_at),
        count: events.len() as i64,
        records,
    }
}

/// The format's version, its first byte.
const VERSION: u8 = 2;

/// A string where the previous event had `was`: 0 absent, 1 the same, 2 and the string, 3 and
/// the 16 bytes of a UUID written as [`as_uuid`] reads it.
fn text(out: &mut Vec<u8>, s: Option<&str>, was: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) if was == Some(s) => out.push(1),
        Some(s) => match as_uuid(s) {
            Some(uuid) => {
                out.push(3);
                out.extend_from_slice(uuid.as_bytes());
            }
            None => {
                out.push(2);
                varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        },
    }
}

/// `s` as a UUID when it is one in the form a listing gives back: lowercase hyphenated (a
/// request id from a proxy in another form stays text, byte for byte).
fn as_uuid(s: &str) -> Option<uuid::Uuid> {
    let b = s.as_bytes();
    let canonical = b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        });
    canonical
        .then(|| uuid::Uuid::try_parse_ascii(b).ok())
        .flatten()
}

/// The events of a stored batch, oldest first.
pub(crate) fn decode(first_id: i64, min_at: i64, records: &[u8]) -> StoreResult<Vec<AuditEvent>> {
    let mut r = Reader(records);
    if !(1..=VERSION).contains(&r.byte()?) {
        return Err(damaged());
    }
    let count = r.varint()? as usize;
    let mut events: Vec<AuditEvent> = Vec::with_capacity(count.min(records.len()));
    let (mut id, mut at) = (first_id, min_at);
    for _ in 0..count {
        id = i64::try_from(r.varint()?)
            .ok()
            .and_then(|d| id.checked_add(d))
            .ok_or_else(damaged)?;
        at = at.checked_add(unzigzag(r.varint()?)).ok_or_else(damaged)?;
        let before = events.last();
        let was = |f: fn(&AuditEvent) -> Option<&str>| before.and_then(f);
        let event = r.text(was(|b| Some(&b.event)))?.ok_or_else(damaged)?;
        let partner_id = r.text(was(|b| b.partner_id.as_deref()))?;
        let username = r.text(was(|b| b.username.as_deref()))?;
        let client_id = r.text(was(|b| b.client_id.as_deref()))?;
        let ip = r.text(was(|b| b.ip.as_deref()))?;
        let request_id = r.text(was(|b| b.request_id.as_deref()))?;
        let mut previous = before.map(|b| b.detail.iter());
        let mut detail = Map::new();
        for _ in 0..r.varint()? {
            let (was_key, was_value) = match previous.as_mut().and_then(|p| p.next()) {
                Some((k, v)) => (Some(k.as_str()), v.as_str()),
                None => (None, None),
            };
            let key = r.text(was_key)?.ok_or_else(damaged)?;
            let value = match r.byte()? {
                0 => Value::Null,
                1 => Value::Bool(false),
                2 => Value::Bool(true),
                3 => Value::from(unzigzag(r.varint()?)),
                4 => Value::String(r.text(was_value)?.ok_or_else(damaged)?),
                5 => {
                    let json = r.text(None)?.ok_or_else(damaged)?;
                    serde_json::from_str(&json).map_err(|_| damaged())?
                }
                _ => return Err(damaged()),
            };
            detail.insert(key, value);
        }
        events.push(AuditEvent {
            id,
            at,
            event,
            partner_id,
            username,
            client_id,
            ip,
            request_id,
            detail,
        });
    }
    Ok(events)
}

/// The distinct partners, clients and users a batch's events name, as `(kind, value)`: stored
/// beside the batch (`audit_batch_keys`) so that a filtered listing reads only the batches
/// that name its partner, client or user.
pub(crate) fn keys(events: &[TokenIssued]) -> std::collections::BTreeSet<(&'static str, &str)> {
    let mut keys = std::collections::BTreeSet::new();
    let mut before: Option<&TokenIssued> = None;
    for e in events {
        // The same caller as the previous event's (the common case) adds nothing.
        if before.is_none_or(|b| b.client_id() != e.client_id() || b.partner_id() != e.partner_id())
        {
            keys.insert(("partner", e.partner_id()));
            keys.insert(("client", e.client_id()));
        }
        before = Some(e);
    }
    keys
}

/// The query for up to [`PAGE`] batches below id `below` that may hold events matching `q`,
/// newest first: driven by the index of `audit_batch_keys` when `q` names a partner, client or
/// user (a rare partner's batches are found without reading the others), by the primary key
/// otherwise.
pub(crate) fn page_query<DB>(q: &AuditQuery, below: i64) -> sqlx::QueryBuilder<DB>
where
    DB: sqlx::Database,
    DB::Arguments: Default,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut named = [
        ("partner", &q.partner_id),
        ("client", &q.client_id),
        ("user", &q.username),
    ]
    .into_iter()
    .filter_map(|(kind, value)| value.as_ref().map(|v| (kind, v.clone())));
    let mut sql;
    match named.next() {
        Some((kind, value)) => {
            sql = sqlx::QueryBuilder::new(format!(
                "SELECT b.* FROM audit_batch_keys k JOIN audit_batches b ON b.id = k.batch_id \
                 WHERE k.kind = '{kind}' AND k.value = "
            ));
            sql.push_bind(value)
                .push(" AND k.batch_id < ")
                .push_bind(below);
        }
        None => {
            sql = sqlx::QueryBuilder::new("SELECT b.* FROM audit_batches b WHERE b.id < ");
            sql.push_bind(below);
        }
    }
    for (kind, value) in named {
        sql.push(format_args!(
            " AND EXISTS (SELECT 1 FROM audit_batch_keys o \
               WHERE o.kind = '{kind}' AND o.batch_id = b.id AND o.value = "
        ))
        .push_bind(value)
        .push(")");
    }
    sql.push(" AND b.first_id < ")
        .push_bind(q.before.unwrap_or(i64::MAX))
        .push(" AND b.max_at >= ")
        .push_bind(q.since.unwrap_or(i64::MIN))
        .push(" AND b.min_at < ")
        .push_bind(q.until.unwrap_or(i64::MAX))
        .push(" ORDER BY b.id DESC LIMIT ")
        .push_bind(PAGE);
    sql
}

/// Whether events of batches can match `q`.
fn may_match(q: &AuditQuery) -> bool {
    q.event
        .as_deref()
        .is_none_or(|e| e == Event::TokenIssued.as_str())
}

fn matches(q: &AuditQuery, e: &AuditEvent) -> bool {
    e.id < q.before.unwrap_or(i64::MAX)
        && q.since.is_none_or(|t| e.at >= t)
        && q.until.is_none_or(|t| e.at < t)
        && (q.partner_id.is_none() || q.partner_id == e.partner_id)
        && (q.username.is_none() || q.username == e.username)
        && (q.client_id.is_none() || q.client_id == e.client_id)
}

/// A page of the audit trail: `rows` (the page of rows that match `q`, newest first) merged
/// with the matching events of batches, newest first, at most `q.limit`. `fetch(below)` reads
/// up to [`PAGE`] batches with an id below `below` that may hold a match (`first_id` below
/// `q.before`, times overlapping `q.since..q.until`), newest first. Batches are read until the
/// page is full and the next batch's newest event is older than its oldest.
pub(crate) async fn listing<F, Fut>(
    q: &AuditQuery,
    mut rows: Vec<AuditEvent>,
    mut fetch: F,
) -> StoreResult<Vec<AuditEvent>>
where
    F: FnMut(i64) -> Fut,
    Fut: Future<Output = StoreResult<Vec<Batch>>>,
{
    let limit = q.limit as usize;
    if !may_match(q) || limit == 0 {
        rows.truncate(limit);
        return Ok(rows);
    }
    let mut below = i64::MAX;
    'pages: loop {
        let page = fetch(below).await?;
        let full = page.len() as i64 == PAGE;
        for b in page {
            if rows.len() >= limit && rows[limit - 1].id > b.id {
                break 'pages;
            }
            below = b.id;
            rows.extend(
                decode(b.first_id, b.min_at, &b.records)?
                    .into_iter()
                    .filter(|e| matches(q, e)),
            );
            rows.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
            rows.truncate(limit);
        }
        if !full {
            break;
        }
    }
    Ok(rows)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> StoreResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn take(&mut self, n: usize) -> StoreResult<&'a [u8]> {
        if n > self.0.len() {
            return Err(damaged());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    /// A string written by [`text`], given the previous event's.
    fn text(&mut self, was: Option<&str>) -> StoreResult<Option<String>> {
        match self.byte()? {
            0 => Ok(None),
            1 => was.map(|s| Some(s.to_string())).ok_or_else(damaged),
            2 => {
                let len = self.varint()? as usize;
                let bytes = self.take(len)?;
                let s = std::str::from_utf8(bytes).map_err(|_| damaged())?;
                Ok(Some(s.to_string()))
            }
            3 => {
                let bytes: [u8; 16] = self.take(16)?.try_into().map_err(|_| damaged())?;
                Ok(Some(uuid::Uuid::from_bytes(bytes).hyphenated().to_string()))
            }
            _ => Err(damaged()),
        }
    }

    fn varint(&mut self) -> StoreResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(damaged())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tessera_core::caller::Caller;
    use tessera_core::model::{PartnerStatus, PasswordHash};
    use tessera_core::scope::ScopeSet;

    use super::*;

    fn token(at: i64, partner: &str, jti: &str) -> TokenIssued {
        let partner = tessera_core::model::Partner {
            id: partner.into(),
            name: "P".into(),
            email: "p@example.com".into(),
            org_code: "O".into(),
            status: PartnerStatus::Active,
            scopes: ScopeSet::parse("crm").unwrap(),
            password_hash: PasswordHash("$argon2id$x".into()),
            created_at: 1,
        };
        let mut event = TokenIssued::new(
            at,
            &Caller::Partner(Arc::new(partner)),
            "client_credentials",
            "c-1",
            jti,
            jti == "b",
        );
        event.ip = Some(
            if jti == "c" {
                "2001:db8::1"
            } else {
                "192.0.2.7"
            }
            .parse()
            .unwrap(),
        );
        event.request_id = (jti != "b").then(|| format!("req-{jti}").into());
        event
    }

    #[test]
    fn a_batch_gives_back_every_event_as_it_was_recorded() {
        let events = [
            token(100, "p1", "a"),
            token(99, "p2", "b"),
            token(101, "p1", "c"),
            token(101, "p1", "d"),
        ];
        let ids = [7, 9, 10, 12];
        let batch = encode(&events, &ids);
        assert_eq!((batch.id, batch.first_id, batch.count), (12, 7, 4));
        assert_eq!(
            (batch.min_at, batch.max_at),
            (99, 101),
            "the earliest, not the first"
        );
        let back = decode(batch.first_id, batch.min_at, &batch.records).unwrap();
        assert_eq!(back.len(), 4);
        for ((e, got), id) in events.iter().zip(&back).zip(ids) {
            let mut want = e.to_event();
            want.id = id;
            assert_eq!(&want, got);
        }
        // Repeated strings are stored once: far less than the JSON of the same events.
        let many: Vec<TokenIssued> = (0..100)
            .map(|i| token(100 + i / 10, "p1", &format!("{i:032x}")))
            .collect();
        let json: usize = many
            .iter()
            .map(|e| serde_json::to_vec(&e.to_event()).unwrap().len())
            .sum();
        let ids: Vec<i64> = (1..=100).collect();
        let size = encode(&many, &ids).records.len();
        assert!(size * 2 < json, "{size} bytes against {json} as JSON");
    }

    #[test]
    fn a_batch_names_each_partner_and_client_once() {
        let events = [
            token(1, "p1", "a"),
            token(1, "p1", "b"),
            token(1, "p2", "c"),
            token(1, "p1", "d"),
        ];
        let keys: Vec<_> = keys(&events).into_iter().collect();
        assert_eq!(
            keys,
            [
                ("client", "p1"),
                ("client", "p2"),
                ("partner", "p1"),
                ("partner", "p2")
            ]
        );
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_panic() {
        let batch = encode(&[token(100, "p1", "a")], &[1]);
        for cut in 0..batch.records.len() {
            assert!(decode(1, 100, &batch.records[..cut]).is_err());
        }
        let mut wrong = batch.records.clone();
        for version in [0, VERSION + 1] {
            wrong[0] = version;
            assert!(decode(1, 100, &wrong).is_err(), "version {version}");
        }
    }

    #[test]
    fn uuids_take_sixteen_bytes_and_come_back_as_they_were_written() {
        let jti = |i: u128| uuid::Uuid::from_u128(0x0193_0000_7000_8000_0000_0000_0000_0000 + i);
        let mut events: Vec<TokenIssued> = (0..100)
            .map(|i| {
                let mut e = token(100, "p1", &jti(i).to_string());
                e.request_id = Some(jti(1_000 + i).to_string().into());
                e
            })
            .collect();
        let ids: Vec<i64> = (1..=100).collect();
        let size = encode(&events, &ids).records.len();
        assert!(size < 100 * 55, "{size} bytes for 100 events");
        // Forms a listing must give back byte for byte stay text: upper case, no hyphens, a
        // proxy's own id.
        let upper = jti(7).to_string().to_uppercase();
        let simple = jti(8).simple().to_string();
        events[1].request_id = Some(upper.clone().into());
        events[2].request_id = Some(simple.clone().into());
        events[3].request_id = Some(format!("{}x", &upper[..35]).into());
        let batch = encode(&events, &ids);
        let back = decode(batch.first_id, batch.min_at, &batch.records).unwrap();
        for ((e, got), id) in events.iter().zip(&back).zip(&ids) {
            let mut want = e.to_event();
            want.id = *id;
            assert_eq!(&want, got);
        }
        assert_eq!(back[1].request_id.as_deref(), Some(upper.as_str()));
        assert_eq!(back[2].request_id.as_deref(), Some(simple.as_str()));
    }

    #[test]
    fn a_version_one_batch_is_still_read() {
        // Version 1 is version 2 without the UUID form: what the first batches hold.
        let events = [token(100, "p1", "a"), token(101, "p2", "b")];
        let mut batch = encode(&events, &[1, 2]);
        batch.records[0] = 1;
        let back = decode(1, 100, &batch.records).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].detail["jti"], "b");
    }
}
