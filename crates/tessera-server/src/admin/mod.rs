//! The admin HTTP API (`/admin/v1/...`, JSON): the CLI's operations for a platform's back
//! office. Every call needs an admin token (`tessera admin-token create --scopes read,write`):
//! `read` for `GET`, `write` for everything else. Handlers are thin: they parse JSON into the
//! inputs of [`tessera_core::operations`] (the same code the CLI runs) and answer its outputs;
//! listings are [`tessera_core::inventory`] pages (`?after=<next>&limit=`). [`guard`] does what
//! every call shares: the token, the scope, the audit of reads (writes are audited by the
//! operations), and `Idempotency-Key` replays. Errors are RFC 9457 problems ([`problem`]).
//!
//! It is served on the main listener, on its own (`--admin-listen`), or not at all.
//!
//! The handlers are one module per noun (`partners`, `clients`, `users`, `scopes`, `grants`,
//! `keys`, `audit`); this one holds the routes, the OpenAPI document and what handlers share
//! (reading bodies and queries, answering, applying a change at once on this node).

mod audit;
mod clients;
mod grants;
mod guard;
mod keys;
mod openapi;
mod partners;
pub mod problem;
mod scopes;
mod users;

use openapi::Conventions;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::audit::AuditQuery;
use tessera_core::inventory::{self, PageRequest};
use tessera_core::keys::{Alg, KeyUse};
use tessera_core::model::{AdminToken, Role};
use tessera_core::operations::{self as ops, Operator};
use tessera_core::store::{GrantsOf, UserFilter};
use tessera_core::unix_now;

use crate::app::{AdminState, AppState};
use crate::body::{RawBody, bytes, parse_json};
use problem::Problem;

pub fn routes(app: &AppState) -> Router<AppState> {
    let api = Router::new()
        .route(
            "/partners",
            get(partners::partners).post(partners::create_partner),
        )
        .route("/partners/{id}", get(partners::partner))
        .route("/partners/{id}/status", put(partners::partner_status))
        .route("/partners/{id}/password", put(partners::partner_password))
        .route(
            "/partners/{id}/tokens",
            post(partners::create_partner_token).delete(partners::revoke_partner_tokens),
        )
        .route(
            "/partner-tokens/revoke",
            post(partners::revoke_partner_token),
        )
        .route(
            "/clients",
            get(clients::clients).post(clients::create_client),
        )
        .route("/clients/{id}", get(clients::client))
        .route("/clients/{id}/secret", post(clients::rotate_secret))
        .route("/clients/{id}/status", put(clients::client_status))
        .route("/users", get(users::users).post(users::create_user))
        .route("/users/{id}", get(users::user))
        .route("/users/{id}/password", put(users::user_password))
        .route(
            "/users/{id}/sessions",
            axum::routing::delete(users::end_user_sessions),
        )
        .route("/scopes", get(scopes::scopes).post(scopes::add_scopes))
        .route("/grants", get(grants::grants))
        .route("/grants/revoke", post(grants::revoke_grant))
        .route("/keys", get(keys::keys))
        .route("/keys/rotate", post(keys::rotate_keys))
        .route("/keys/{kid}/revoke", post(keys::revoke_key))
        .route("/audit", get(audit::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::guard,
        ))
        // Public, like any API's documentation; everything else needs a token.
        .route("/openapi.json", get(openapi_json))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    Router::new().nest("/admin/v1", api)
}

async fn openapi_json() -> Response {
    use utoipa::OpenApi as _;
    crate::openapi::serve(AdminApi::openapi())
}

async fn method_not_allowed() -> Response {
    Problem::MethodNotAllowed.into_response()
}

async fn not_found() -> Response {
    Problem::Admin(tessera_core::operations::AdminError::NotFound(
        "no such admin API route; see /admin/v1/...".into(),
    ))
    .into_response()
}

type Answer = Result<Response, Problem>;

fn admin(app: &AppState) -> Result<&AdminState, Problem> {
    app.admin.as_deref().ok_or(Problem::Unavailable)
}

fn by(token: &AdminToken) -> Operator {
    Operator::api(&token.id)
}

fn body<T: DeserializeOwned>(raw: &RawBody) -> Result<T, Problem> {
    use crate::error::RequestError as R;
    bytes(raw).and_then(parse_json).map_err(|e| match e {
        R::BodyTooLarge(n) => Problem::TooLarge(n),
        // Name the field and what is wrong with it, not just that something is.
        R::Invalid(fields) => Problem::BadRequest(
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => Problem::BadRequest(other.to_string()),
    })
}

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

fn created(value: impl serde::Serialize) -> Answer {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// A write reached the store and the change feed; this node applies it now rather than at its
/// next feed poll, so that the caller's next request sees it here.
async fn applied(app: &AppState) {
    if let Err(e) = app.engine.sync(unix_now()).await {
        tracing::warn!(error = %e, "could not apply an admin change at once");
    }
}

/// A page of a listing.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// The `next` of the previous page.
    after: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
}

fn page(after: &Option<String>, limit: Option<u32>) -> PageRequest {
    PageRequest {
        after: after.clone(),
        limit,
    }
}

type QueryOf<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn query<T: DeserializeOwned>(q: QueryOf<T>) -> Result<T, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::BadRequest(e.body_text()))
}

/// The `Idempotency-Key` header of a `POST`, as the OpenAPI document describes it (the guard
/// reads the header itself, so this type is never built: the one description-only type left).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyKey {
    /// 1 to 255 printable characters: a repeat of the same request within 24 hours gets the
    /// first answer again.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

/// The admin API's OpenAPI 3.1 document, generated from the types above and the operations'.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Tessera admin API", description = "The operator's operations over HTTP; every call needs an admin token."),
    paths(
        partners::partners, partners::partner, partners::create_partner, partners::partner_status, partners::partner_password, partners::create_partner_token, partners::revoke_partner_tokens, partners::revoke_partner_token, clients::clients, clients::client, clients::create_client, clients::rotate_secret, clients::client_status, users::users, users::user, users::create_user, users::user_password, users::end_user_sessions, scopes::scopes, scopes::add_scopes, grants::grants, grants::revoke_grant, keys::keys, keys::rotate_keys, keys::revoke_key, audit::audit
    ),
    components(schemas(problem::ProblemBody)),
    modifiers(&Conventions)
)]
pub struct AdminApi;
