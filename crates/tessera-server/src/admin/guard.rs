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
    match percent_encoding::percent_decode_str(parts.uri.path()).decode_utf8() {
        Err(_) => return Err(Problem::BadRequest("the path is not UTF-8".into())),
        Ok(path) if path.contains('\0') => {
            return Err(Problem::BadRequest(
                "the path holds a NUL character (%00)".into(),
            ));
        }
        Ok(_) => {}
    }
    if parts.uri.query().is_some_and(|q| q.contains("%00")) {
        return Err(Problem::BadRequest(
            "the query holds a NUL character (%00)".into(),
        ));
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
    // The kept answer is sealed bound to its token and key (another format's context than
    // 0.1.0's, whose answers this release does not replay: the store reports them as carried
    // out without an answer).
    let context = format!("idempotency-answer:{}:{key}", token.id);
    // The request's id ties the key to the change: a write whose `admin.change` event carries
    // it marks the key carried out in its own transaction. Without one, no failure frees the key.
    let request_id = tessera_core::audit::CONTEXT
        .try_with(|c| c.request_id.clone())
        .ok()
        .flatten();
    let reserved = store
        .reserve_idempotency_key(
            &token.id,
            key,
            request_id.as_deref(),
            &fingerprint,
            now,
            now - IDEMPOTENCY_TTL,
        )
        .await?;
    match reserved {
        Some(held) if held.fingerprint != fingerprint => Err(Problem::IdempotencyConflict(
            "this Idempotency-Key was used for another request; use a new key for a new request",
        )),
        Some(held) => match held.answer.as_deref() {
            Some(sealed) => {
                let (status, body) = admin
                    .master
                    .open(&context, sealed)
                    .ok()
                    .and_then(|kept| answer_of(&kept))
                    .ok_or(Problem::Unavailable)?;
                let mut r = (status, body).into_response();
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
            None => Err(Problem::IdempotencyConflict(unanswered(&held, now))),
        },
        None => {
            let response = next.run(Request::from_parts(parts, Body::from(body))).await;
            let status = response.status();
            if status.is_server_error() {
                // Not an answer to keep. The key is freed for the same request to be sent
                // again only when nothing was written: the store declines while the key is
                // marked carried out by a change of this request, including one whose commit
                // outlived the request's deadline (the release waits for it), since a rerun
                // would do it twice.
                if request_id.is_some() {
                    store.release_idempotency_key(&token.id, key).await?;
                }
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .map_err(|_| Problem::Unavailable)?;
            let sealed = admin.master.seal(&context, &kept_answer(status, &bytes));
            // The change is made (and audited with it): its answer goes to the caller even when
            // it cannot be kept for replays, rather than a 503 that says it failed. A repeat of
            // the key then gets a conflict, never a second execution.
            let mut kept = store.finish_idempotency_key(&token.id, key, &sealed).await;
            for pause in [50, 250] {
                if kept.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                kept = store.finish_idempotency_key(&token.id, key, &sealed).await;
            }
            if let Err(e) = kept {
                tracing::error!(error = %e, "an admin answer could not be kept for its Idempotency-Key");
            }
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
    }
}

/// An answer as it is kept for replays (then sealed): its status, two bytes big-endian, then
/// its body. The HTTP status is the server's to keep; the store holds opaque bytes.
fn kept_answer(status: StatusCode, body: &[u8]) -> Vec<u8> {
    let mut kept = Vec::with_capacity(2 + body.len());
    kept.extend_from_slice(&status.as_u16().to_be_bytes());
    kept.extend_from_slice(body);
    kept
}

/// The status and body of a [`kept_answer`].
fn answer_of(kept: &[u8]) -> Option<(StatusCode, Vec<u8>)> {
    let (status, body) = kept.split_first_chunk::<2>()?;
    let status = StatusCode::from_u16(u16::from_be_bytes(*status)).ok()?;
    Some((status, body.to_vec()))
}

/// Why a key that is held but has no answer cannot be used: its change was made but its
/// answer not kept, its request is still running, or (reserved more than [`IN_FLIGHT_SECS`]
/// ago, nothing marked) its server stopped before it finished.
fn unanswered(held: &tessera_core::model::IdempotentRecord, now: i64) -> &'static str {
    if held.carried_out {
        "the request with this Idempotency-Key was carried out, but its answer could not be kept; \
         check its result (GET) before sending it again under a new key"
    } else if now - held.reserved_at <= IN_FLIGHT_SECS {
        "a request with this Idempotency-Key is still being answered; retry shortly"
    } else {
        "the request with this Idempotency-Key did not finish and its outcome is unknown; \
         check its result (GET) before sending it again under a new key"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_carries_its_status() {
        let kept = kept_answer(StatusCode::CREATED, br#"{"a":1}"#);
        assert_eq!(
            answer_of(&kept),
            Some((StatusCode::CREATED, br#"{"a":1}"#.to_vec()))
        );
        assert_eq!(answer_of(&kept_answer(StatusCode::OK, b"")).unwrap().1, b"");
        assert_eq!(answer_of(b"\x01"), None);
    }

    #[test]
    fn an_unanswered_key_says_whether_its_change_was_made() {
        let held = |carried_out| tessera_core::model::IdempotentRecord {
            fingerprint: SecretDigest([0; 32]),
            carried_out,
            answer: None,
            reserved_at: 1_000,
        };
        let in_flight = 1_000 + IN_FLIGHT_SECS;
        assert!(unanswered(&held(false), 1_000).contains("still being answered"));
        assert!(unanswered(&held(false), in_flight).contains("still being answered"));
        assert!(unanswered(&held(false), in_flight + 1).contains("outcome is unknown"));
        for now in [1_000, in_flight + 1] {
            assert!(unanswered(&held(true), now).contains("was carried out"));
        }
    }
}
