//! `POST /v2/oauth/par` (RFC 9126 in the partner dialect): the partner, authenticated as at
//! `/v2/oauth/token`, pushes an authorization request of one of its clients and gets
//! `201 {"data": {"request_uri", "expires_in"}}`; the browser then goes to
//! `/v2/oauth/authorize` with `client_id` and `request_uri` only.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::authorize::AuthorizeParams;
use tessera_core::{Caller, unix_now};
use tessera_proto::partner::PushRequest;
use tessera_proto::standard::PushedResponse;

use super::{auth, error, ok};
use crate::app::AppState;
use crate::body::{RawBody, json};
use crate::error::RequestError;

#[utoipa::path(post, operation_id = "partner_par", path = "/v2/oauth/par", tag = "partner",
    request_body = tessera_proto::partner::PushRequest,
    responses((status = 201, description = "Kept: send the browser to /v2/oauth/authorize with \
        client_id and request_uri (once, within expires_in)",
        body = tessera_proto::partner::Envelope<tessera_proto::standard::PushedResponse>)))]
pub async fn par(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let partner = auth::partner(&app.engine, &headers, now).await?;
        let r: PushRequest = json(&headers, &body)?;
        let params = AuthorizeParams {
            response_type: r.response_type,
            client_id: r.client_id,
            redirect_uri: r.redirect_uri,
            scope: r.scope,
            state: r.state,
            code_challenge: r.code_challenge,
            code_challenge_method: r.code_challenge_method,
            nonce: r.nonce,
            prompt: r.prompt,
            max_age: r.max_age.map(|a| a.to_string()),
            id_token_hint: r.id_token_hint,
            request_uri: r.request_uri,
            request: r.request,
            response_mode: r.response_mode,
        };
        let pushed = app
            .engine
            .push_authorization(&Caller::Partner(partner), params, "partner", now)
            .await?;
        Ok::<_, RequestError>(pushed)
    }
    .await;
    match result {
        Ok(pushed) => ok(
            StatusCode::CREATED,
            PushedResponse {
                request_uri: pushed.request_uri,
                expires_in: pushed.expires_in,
            },
            now,
        ),
        Err(e) => error::render(&e, now),
    }
}
