//! `POST /oauth/revoke` (RFC 7009), client-authenticated: `200` for every token the client may
//! name, including unknown ones (§2.2); another organisation's token is left alone, also `200`,
//! so the endpoint tells nobody which tokens exist.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::{EngineError, unix_now};

use super::{client_request, error};
use crate::app::AppState;
use crate::body::{RawBody, bytes};
use crate::error::RequestError;

#[utoipa::path(post, operation_id = "oauth_revoke", path = "/oauth/revoke", tag = "standard",
    request_body(content = tessera_proto::standard::TokenParam,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked (an unknown token too, RFC 7009 §2.2)")))]
pub async fn revoke(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let (caller, mut form) = client_request(&app.engine, &headers, bytes(&body)?).await?;
        let token = form.require("token")?;
        match app.engine.revoke(&caller, &token, now).await {
            Ok(()) | Err(EngineError::NotPartnersResource(_)) => Ok(()),
            Err(e) => Err(RequestError::from(e)),
        }
    }
    .await;
    match result {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            crate::app::no_store(&mut r);
            r
        }
        Err(e) => error::render(&e),
    }
}
