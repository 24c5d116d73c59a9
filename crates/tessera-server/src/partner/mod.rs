//! The partner dialect (README, *Partner dialect*; wire-compatible with seed 000): JSON in, the
//! `{"data", "meta"}` envelope out, errors through [`error::render`].

pub mod accounts;
pub mod auth;
pub mod error;
pub mod openapi;
pub mod par;
pub mod revoke;
pub mod token;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tessera_proto::partner::{Envelope, Meta};

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/oauth/token", post(token::token))
        .route("/v2/oauth/par", post(par::par))
        .route("/v2/oauth/revoke", post(revoke::revoke))
        .route("/v2/accounts", post(accounts::create).get(accounts::list))
        .route("/v2/accounts/{account_id}", get(accounts::get))
        .route("/v2/openapi.json", get(openapi_json))
        .route("/openapi.json", get(public_openapi_json))
}

/// Both public dialects in one document.
async fn public_openapi_json() -> Response {
    use utoipa::OpenApi as _;
    let mut doc = openapi::PartnerApi::openapi();
    doc.merge(crate::standard::openapi::StandardApi::openapi());
    doc.info.title = "Tessera".into();
    doc.info.description =
        Some("The partner dialect (/v2) and the standard dialect (/oauth).".into());
    crate::openapi::serve(doc)
}

async fn openapi_json() -> Response {
    use utoipa::OpenApi as _;
    crate::openapi::serve(openapi::PartnerApi::openapi())
}

/// A successful partner-dialect response.
pub fn ok<T: Serialize>(status: StatusCode, data: T, now: i64) -> Response {
    let mut response = (
        status,
        axum::Json(Envelope {
            data,
            meta: Meta { timestamp: now },
        }),
    )
        .into_response();
    crate::app::no_store(&mut response);
    response
}
