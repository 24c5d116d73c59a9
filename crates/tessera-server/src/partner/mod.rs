//! The partner dialect (SPEC §3, wire-compatible with seed 000): JSON in, the
//! `{"data", "meta"}` envelope out, errors through [`error::render`].

pub mod accounts;
pub mod auth;
pub mod error;
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
        .route("/v2/oauth/revoke", post(revoke::revoke))
        .route("/v2/accounts", post(accounts::create).get(accounts::list))
        .route("/v2/accounts/{account_id}", get(accounts::get))
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
