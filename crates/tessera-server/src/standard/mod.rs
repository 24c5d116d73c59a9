//! The standard dialect (README, *Standard dialect*; RFC 6749, wire-compatible with seed 002): form-encoded token,
//! introspection and revocation endpoints with client authentication, discovery (RFC 8414), and
//! the bearer-protected sign-up, `me` and OpenID Connect `userinfo` endpoints. Errors go
//! through [`error`].

pub mod discovery;
pub mod error;
pub mod form;
pub mod introspect;
pub mod openapi;
pub mod par;
pub mod revoke;
pub mod token;
pub mod users;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use tessera_core::Caller;
use tessera_core::Engine;

use crate::app::AppState;
use crate::error::RequestError;
use form::Form;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth/token", post(token::token))
        .route("/oauth/par", post(par::par))
        .route("/oauth/introspect", post(introspect::introspect))
        .route("/oauth/revoke", post(revoke::revoke))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route("/v2/api/users/sign-up", post(users::sign_up))
        .route("/api/users/me", get(users::me))
        .route(
            "/oauth/userinfo",
            get(users::userinfo).post(users::userinfo),
        )
        .route("/oauth/openapi.json", get(openapi_json))
}

async fn openapi_json() -> axum::response::Response {
    use utoipa::OpenApi as _;
    crate::openapi::serve(openapi::StandardApi::openapi())
}

/// Parse the form and authenticate the client it names.
pub async fn client_request(
    engine: &Engine,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Caller, Form), RequestError> {
    let mut form = Form::parse(headers, body)?;
    let (id, secret) = form::client_credentials(headers, &mut form)?;
    let caller = engine
        .authenticate_client(&id, &secret, tessera_core::unix_now())
        .await?;
    Ok((caller, form))
}
