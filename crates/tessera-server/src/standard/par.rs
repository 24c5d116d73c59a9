//! `POST /oauth/par` (RFC 9126 §2): the client pushes its authorization request, authenticated
//! as at the token endpoint, and gets `201 {"request_uri", "expires_in"}`; errors are the token
//! endpoint's (`invalid_request`, `invalid_scope`, `unauthorized_client`, `invalid_client`...).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::authorize::AuthorizeParams;
use tessera_core::unix_now;
use tessera_proto::standard::{OAuthError, PushForm, PushedResponse};

use super::{client_request, error};
use crate::app::AppState;
use crate::body::{RawBody, bytes};
use crate::error::RequestError;

#[utoipa::path(post, operation_id = "oauth_par", path = "/oauth/par", tag = "standard",
    request_body(content = PushForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "Kept: send the browser to /oauth/authorize with client_id \
            and request_uri (once, within expires_in)", body = PushedResponse),
        (status = 400, description = "invalid_request, invalid_scope, unauthorized_client, \
            unsupported_response_type", body = OAuthError),
        (status = 401, description = "invalid_client", body = OAuthError),
    ))]
pub async fn par(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let (caller, form) = client_request(&app.engine, &headers, bytes(&body)?).await?;
        let mut params = AuthorizeParams::default();
        for (name, value) in form.into_pairs() {
            params.set(&name, value);
        }
        let pushed = app
            .engine
            .push_authorization(&caller, params, "standard", now)
            .await?;
        Ok::<_, RequestError>(pushed)
    }
    .await;
    match result {
        Ok(pushed) => {
            let mut r = (
                StatusCode::CREATED,
                axum::Json(PushedResponse {
                    request_uri: pushed.request_uri,
                    expires_in: pushed.expires_in,
                }),
            )
                .into_response();
            crate::app::no_store(&mut r);
            r
        }
        Err(e) => error::render(&e),
    }
}
