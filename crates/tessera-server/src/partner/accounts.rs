//! `/v2/accounts`: end-customer accounts owned by the calling partner.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tessera_core::model::Account;
use tessera_core::unix_now;
use tessera_proto::partner::{AccountPage, AccountView, CreateAccountRequest};

use super::{auth, error, ok};
use crate::app::AppState;
use crate::body::{RawBody, json};
use crate::error::RequestError;

fn view(a: Account) -> AccountView {
    AccountView {
        account_id: a.id,
        name: a.name,
        external_id: a.external_id,
        created_at: a.created_at,
    }
}

#[utoipa::path(post, operation_id = "partner_create_account", path = "/v2/accounts", tag = "partner",
    request_body = tessera_proto::partner::CreateAccountRequest,
    responses((status = 201, description = "Created",
        body = tessera_proto::partner::Envelope<tessera_proto::partner::AccountView>)))]
pub async fn create(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let partner = auth::partner(&app.engine, &headers, now).await?;
        let req: CreateAccountRequest = json(&headers, &body)?;
        Ok::<_, RequestError>(
            app.engine
                .create_account(&partner, &req.name, req.external_id.as_deref(), now)
                .await?,
        )
    }
    .await;
    match result {
        Ok(a) => ok(StatusCode::CREATED, view(a), now),
        Err(e) => error::render(&e, now),
    }
}

#[utoipa::path(get, operation_id = "partner_get_account", path = "/v2/accounts/{account_id}", tag = "partner",
    params(("account_id" = String, Path)),
    responses((status = 200, description = "The account",
        body = tessera_proto::partner::Envelope<tessera_proto::partner::AccountView>)))]
pub async fn get(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(account_id): Path<String>,
) -> Response {
    let now = unix_now();
    let result = async {
        let partner = auth::partner(&app.engine, &headers, now).await?;
        Ok::<_, RequestError>(app.engine.get_account(&partner, &account_id).await?)
    }
    .await;
    match result {
        Ok(a) => ok(StatusCode::OK, view(a), now),
        Err(e) => error::render(&e, now),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 200 (default 50).
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, operation_id = "partner_list_accounts", path = "/v2/accounts", tag = "partner", params(ListQuery),
    responses((status = 200, description = "A page of accounts",
        body = tessera_proto::partner::Envelope<tessera_proto::partner::AccountPage>)))]
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let now = unix_now();
    let result = async {
        let partner = auth::partner(&app.engine, &headers, now).await?;
        let Query(q) = query.map_err(|_| RequestError::field("query", "malformed query string"))?;
        let limit = q
            .limit
            .as_deref()
            .map(|l| {
                l.parse::<u32>()
                    .map_err(|_| RequestError::field("limit", "must be a positive integer"))
            })
            .transpose()?;
        Ok::<_, RequestError>(
            app.engine
                .list_accounts(&partner, q.cursor.as_deref(), limit)
                .await?,
        )
    }
    .await;
    match result {
        Ok(page) => ok(
            StatusCode::OK,
            AccountPage {
                accounts: page.accounts.into_iter().map(view).collect(),
                next_cursor: page.next_cursor,
            },
            now,
        ),
        Err(e) => error::render(&e, now),
    }
}
