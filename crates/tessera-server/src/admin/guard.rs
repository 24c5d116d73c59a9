//! What every admin API call goes through: the admin token (`read` for `GET`, `write`
//! otherwise), an `admin.read` audit event for reads (the operations audit writes), and for a
//! `POST` with an `Idempotency-Key`, at most one execution: a repeat of the same request gets
//! the first answer again (`Idempotent-Replayed: true`), kept 24 hours sealed under the master
//! key (it may hold a secret shown once); the same key with another request, or while the
//! first is still running, is a conflict.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_core::audit::{AuditEvent, Event};
use tessera_core::model::{AdminScope, AdminToken};
use tessera_core::operations::authenticate_admin;
use tessera_core::secret::SecretDigest;
use tessera_core::unix_now;

use super::problem::Problem;
use crate::app::AdminState;
use crate::app::{AppState, MAX_BODY_BYTES};

/// How long an `Idempotency-Key`'s answer is kept.
const IDEMPOTENCY_TTL: i64 = 86_400;
/// Past this, a key reserved but never answered belongs to a request that ran and whose answer
/// could not be kept (an admin call takes seconds; it runs to its end even when its client
/// hangs up), not to one still running.
const IN_FLIGHT_SECS: i64 = 60;
const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Every answer is `no-store`: it may carry a secret shown once, and always private data.
///
/// The call runs to its end in a task of its own, whatever the client does: a client that
/// hangs up mid-request must not leave a change made but not audited, a key rotated but the
/// compromised one not revoked, or an `Idempotency-Key` neither answered nor freed (found by
/// an attack that dropped connections a few milliseconds in).
pub(super) async fn guard(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let context = tessera_core::audit::CONTEXT
        .try_with(Clone::clone)
        .unwrap_or_default();
    let call = tokio::spawn(tessera_core::audit::CONTEXT.scope(context, async move {
        match run(app, request, next).await {
            Ok(r) => r,
            Err(p) => p.into_response(),
        }
    }));
    let mut r = match call.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "an admin API call failed");
            Problem::Unavailable.into_response()
        }
    };
    crate::app::no_store(&mut r);
    r
}

/// A header sent twice is refused rather than read one way here and another by a proxy.
fn once(headers: &HeaderMap, name: &str) -> Result<(), Problem> {
    if headers.get_all(name).iter().count() > 1 {
        return Err(Problem::BadRequest(format!(
            "the {name} header is sent twice"
        )));
    }
    Ok(())
}

async fn run(app: AppState, request: Request, next: Next) -> Result<Response, Problem> {
    let admin = app.admin.clone().ok_or(Problem::Unavailable)?;
    // A write's body is read before its token is checked: a token revoked while the body
    // trickles in (up to the body deadline) must not still make the change.
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let (mut parts, body) = request.into_parts();
    let body = if reading {
        None
    } else {
        Some(
            axum::body::to_bytes(body, MAX_BODY_BYTES)
                .await
                .map_err(|_| Problem::TooLarge(MAX_BODY_BYTES))?,
        )
    };
    once(&parts.headers, "authorization")?;
    once(&parts.headers, IDEMPOTENCY_KEY)?;
    if percent_encoding::percent_decode_str(parts.uri.path())
        .decode_utf8()
        .is_err()
    {
        return Err(Problem::BadRequest("the path is not UTF-8".into()));
    }
    let presented = bearer(&parts.headers).ok_or(Problem::Unauthenticated)?;
    let token = authenticate_admin(admin.store.as_ref(), presented)
        .await?
        .ok_or(Problem::Unauthenticated)?;
    let need = if reading {
        AdminScope::Read
    } else {
        AdminScope::Write
    };
    if !token.scopes.contains(&need) {
        return Err(Problem::Forbidden(need.as_str()));
    }
    let now = unix_now();
    if reading {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or("unmatched", |p| p.as_str())
            .to_string();
        app.engine.audit(
            AuditEvent::new(Event::AdminRead, now)
                .detail("by", tessera_core::operations::Operator::api(&token.id).0)
                .detail("route", route),
        );
    }
    parts.extensions.insert(token.clone());
    let keyed = match (parts.headers.get(IDEMPOTENCY_KEY), body) {
        (None, body) => {
            let body = body.map_or_else(Body::empty, Body::from);
            return Ok(next.run(Request::from_parts(parts, body)).await);
        }
        (Some(_), body) if parts.method != Method::POST || body.is_none() => {
            return Err(Problem::BadRequest(
                "Idempotency-Key is for POST requests".into(),
            ));
        }
        (Some(k), Some(body)) => (
            k.to_str()
                .ok()
                .filter(|k| (1..=255).contains(&k.len()))
                .filter(|k| k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
                .ok_or_else(|| {
                    Problem::BadRequest(
                        "Idempotency-Key must be 1 to 255 printable characters without spaces"
                            .into(),
                    )
                })?
                .to_string(),
            body,
        ),
        (Some(_), None) => unreachable!("a POST's body was read"),
    };
    idempotent(&admin, &token, keyed, parts, next, now).await
}

/// Run a `POST` (whose body was read) at most once for its `Idempotency-Key`.
async fn idempotent(
    admin: &AdminState,
    token: &AdminToken,
    (key, body): (String, axum::body::Bytes),
    parts: axum::http::request::Parts,
    next: Next,
    now: i64,
) -> Result<Response, Problem> {
    let key = key.as_str();
    let uri = parts.uri.to_string();
    let fingerprint = SecretDigest::keyed_parts(
        &admin.fingerprint_key,
        &[parts.method.as_str().as_bytes(), uri.as_bytes(), &body],
    );
    let store = admin.store.as_ref();
    let context = format!("idempotency:{}:{key}", token.id);
    match store
        .reserve_idempotency_key(&token.id, key, &fingerprint, now, now - IDEMPOTENCY_TTL)
        .await?
    {
        Some(held) if held.fingerprint != fingerprint => Err(Problem::IdempotencyConflict(
            "this Idempotency-Key was used for another request; use a new key for a new request",
        )),
        Some(held) => match (held.status, held.body) {
            (Some(status), Some(sealed)) => {
                let body = admin
                    .master
                    .open(&context, &sealed)
                    .map_err(|_| Problem::Unavailable)?;
                let status =
                    StatusCode::from_u16(status as u16).map_err(|_| Problem::Unavailable)?;
                let mut r = (status, body.to_vec()).into_response();
                let kind = if status.is_success() {
                    "application/json"
                } else {
                    "application/problem+json"
                };
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                Ok(r)
            }
            _ => Err(Problem::IdempotencyConflict(unanswered(
                held.reserved_at,
                now,
            ))),
        },
        None => {
            let response = next.run(Request::from_parts(parts, Body::from(body))).await;
            let status = response.status();
            if status.is_server_error() {
                // Not an answer to keep. The key is freed for the same request to be sent
                // again only when nothing was written: a change and its audit event commit
                // together, so an `admin.change` of this request means it was carried out (a
                // commit whose acknowledgement was lost), and a rerun would do it twice.
                if !carried_out(store, now).await {
                    store.release_idempotency_key(&token.id, key).await?;
                }
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .map_err(|_| Problem::Unavailable)?;
            let sealed = admin.master.seal(&context, &bytes);
            let status = i64::from(status.as_u16());
            // The change is made (and audited with it): its answer goes to the caller even when
            // it cannot be kept for replays, rather than a 503 that says it failed. A repeat of
            // the key then gets a conflict, never a second execution.
            let mut kept = store
                .finish_idempotency_key(&token.id, key, status, &sealed)
                .await;
            for pause in [50, 250] {
                if kept.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                kept = store
                    .finish_idempotency_key(&token.id, key, status, &sealed)
                    .await;
            }
            if let Err(e) = kept {
                tracing::error!(error = %e, "an admin answer could not be kept for its Idempotency-Key");
            }
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
    }
}

/// Whether the request being served made an administrative change: an `admin.change` event
/// with its request id, at or after `since`. When that cannot be told (no request id, or the
/// audit trail does not answer), it is taken as made, which keeps the key from a rerun.
async fn carried_out(store: &dyn tessera_core::store::Store, since: i64) -> bool {
    let Some(request_id) = tessera_core::audit::CONTEXT
        .try_with(|c| c.request_id.clone())
        .ok()
        .flatten()
    else {
        return true;
    };
    let query = tessera_core::audit::AuditQuery {
        since: Some(since - 5),
        event: Some(Event::AdminChange.as_str().into()),
        limit: 1000,
        ..Default::default()
    };
    match store.query_audit(&query).await {
        Ok(events) => events
            .iter()
            .any(|e| e.request_id.as_deref() == Some(request_id.as_str())),
        Err(_) => true,
    }
}

/// Why a key that is held but has no answer cannot be used: its request is still running, or
/// (reserved more than [`IN_FLIGHT_SECS`] ago) it ran and its answer was not kept.
fn unanswered(reserved_at: i64, now: i64) -> &'static str {
    if now - reserved_at <= IN_FLIGHT_SECS {
        "a request with this Idempotency-Key is still being answered; retry shortly"
    } else {
        "the request with this Idempotency-Key was carried out, but its answer could not be kept; \
         check its result (GET) before sending it again under a new key"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswered_key_is_in_flight_for_a_minute_then_carried_out() {
        assert!(unanswered(1_000, 1_000).contains("still being answered"));
        assert!(unanswered(1_000, 1_000 + IN_FLIGHT_SECS).contains("still being answered"));
        assert!(unanswered(1_000, 1_001 + IN_FLIGHT_SECS).contains("carried out"));
    }
}
