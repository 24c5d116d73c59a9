//! `POST /v2/oauth/revoke` (RFC 7009 in the partner envelope): 200 with an empty `data` object,
//! also for unknown tokens (§2.2).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::Caller;
use tessera_core::policy::MAX_TOKEN_LEN;
use tessera_core::unix_now;
use tessera_proto::partner::RevokeRequest;

use super::{auth, error, ok};
use crate::app::AppState;
use crate::body::{RawBody, json};
use crate::error::RequestError;

#[utoipa::path(post, operation_id = "partner_revoke", path = "/v2/oauth/revoke", tag = "partner",
    request_body = tessera_proto::partner::RevokeRequest,
    responses((status = 200, description = "Revoked (an unknown token too, RFC 7009)",
        body = tessera_proto::partner::Envelope<tessera_proto::partner::Empty>)))]
pub async fn revoke(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    match run(&app, &headers, &body, now).await {
        Ok(()) => ok(StatusCode::OK, tessera_proto::partner::Empty {}, now),
        Err(e) => error::render(&e, now),
    }
}

async fn run(
    app: &AppState,
    headers: &HeaderMap,
    body: &RawBody,
    now: i64,
) -> Result<(), RequestError> {
    let partner = auth::partner(&app.engine, headers, now).await?;
    let req: RevokeRequest = json(headers, body)?;
    if req.token.is_empty() || req.token.len() > MAX_TOKEN_LEN {
        return Err(RequestError::field(
            "token",
            format!("must be 1 to {MAX_TOKEN_LEN} bytes"),
        ));
    }
    if let Some(hint) = &req.token_type_hint
        && !matches!(hint.as_str(), "access_token" | "refresh_token")
    {
        return Err(RequestError::field(
            "token_type_hint",
            "must be access_token or refresh_token",
        ));
    }
    Ok(app
        .engine
        .revoke(&Caller::Partner(partner), &req.token, now)
        .await?)
}
