//! `POST /oauth/introspect` (RFC 7662), client-authenticated. `{"active": false}` for anything
//! expired, revoked, malformed, foreign or unknown; the token's claims when active.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tessera_core::introspect::Introspection;
use tessera_core::unix_now;
use tessera_proto::standard::Introspection as Answer;

use super::{client_request, error};
use crate::app::AppState;
use crate::body::{RawBody, bytes};
use crate::error::RequestError;

#[utoipa::path(post, operation_id = "oauth_introspect", path = "/oauth/introspect", tag = "standard",
    request_body(content = tessera_proto::standard::TokenParam,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Whether the token is active, and its claims",
        body = tessera_proto::standard::Introspection)))]
pub async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Response {
    let now = unix_now();
    let result = async {
        let (caller, mut form) = client_request(&app.engine, &headers, bytes(&body)?).await?;
        let token = form.require("token")?;
        Ok::<_, RequestError>(app.engine.introspect(&caller, &token, now).await?)
    }
    .await;
    let body = match result {
        Err(e) => return error::render(&e),
        Ok(Introspection::Inactive) => Answer::default(),
        Ok(Introspection::Access(c)) => Answer {
            active: true,
            scope: Some(c.scope),
            client_id: Some(c.client_id),
            token_type: Some("Bearer".into()),
            exp: Some(c.exp),
            iat: Some(c.iat),
            sub: Some(c.sub),
            aud: Some(c.aud),
            iss: Some(c.iss),
            jti: Some(c.jti),
            token_use: Some(c.token_use.as_str().into()),
            partner_id: c.partner_id,
            org_code: c.org_code,
            account_id: c.account_id,
            role: c.role,
            sid: c.sid,
            act: c
                .act
                .map(|act| serde_json::to_value(act).expect("an actor serializes")),
        },
        Ok(Introspection::Refresh(r)) => Answer {
            active: true,
            scope: Some(r.scope),
            client_id: Some(r.client_id),
            exp: Some(r.expires_at),
            iat: Some(r.issued_at),
            sub: Some(r.subject),
            account_id: r.account_id,
            partner_id: Some(r.partner_id),
            ..Answer::default()
        },
    };
    let mut r = axum::Json(body).into_response();
    crate::app::no_store(&mut r);
    r
}
