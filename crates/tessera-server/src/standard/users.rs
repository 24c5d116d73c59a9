//! Seed 002's resource endpoints, protected by bearer tokens (RFC 6750):
//! `POST /v2/api/users/sign-up` (app_token only) and `GET /api/users/me` (any Tessera token);
//! and OpenID Connect's `/oauth/userinfo` (an `openid` sign-in's access token).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use tessera_core::unix_now;
use tessera_core::users::SignUp;
use tessera_proto::standard;

use super::error::render_resource;
use crate::app::AppState;
use crate::body::{RawBody, bytes, parse_json};
use crate::error::RequestError;

fn bearer(headers: &HeaderMap) -> Result<&str, RequestError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(RequestError::AuthorizationHeader(
            "the Authorization header is missing",
        ))?
        .to_str()
        .map_err(|_| RequestError::AuthorizationHeader("the Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(RequestError::AuthorizationHeader(
            "the Authorization scheme must be Bearer",
        )),
    }
}

#[utoipa::path(post, operation_id = "sign_up", path = "/v2/api/users/sign-up", tag = "standard", request_body = standard::SignUp,
    responses(
        (status = 201, description = "Signed up; clientUserToken is the buyer's password, shown once",
            body = standard::Data<standard::SignedUp>),
        (status = 200, description = "The phone number was known: its user, with a new clientUserToken",
            body = standard::Data<standard::SignedUp>),
    ))]
pub async fn sign_up(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let app_token = app.engine.require_app_token(bearer(&headers)?, now)?;
        let req: standard::SignUp = parse_json(bytes(&body)?)?;
        let signed_up = app
            .engine
            .sign_up(
                &app_token,
                SignUp {
                    phone_number: &req.phone_number,
                    first_name: req.first_name.as_deref(),
                    last_name: req.last_name.as_deref(),
                    client_user_id: req.client_user_id.as_deref(),
                },
                now,
            )
            .await?;
        Ok::<_, RequestError>(signed_up)
    }
    .await;
    match result {
        Ok(s) => {
            let status = if s.pre_existing {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let signed_up = standard::SignedUp {
                id: s.user.id,
                phone_number: s.user.username,
                pre_existing_user: s.pre_existing,
                client_user_token: s.client_user_token.expose().to_string(),
            };
            let mut r = (status, axum::Json(standard::Data { data: signed_up })).into_response();
            crate::app::no_store(&mut r);
            r
        }
        Err(e) => render_resource(&e),
    }
}

#[utoipa::path(get, operation_id = "me", path = "/api/users/me", tag = "standard",
    responses((status = 200, description = "Who the token speaks for", body = standard::Data<standard::Me>)))]
pub async fn me(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let now = unix_now();
    let result =
        async { Ok::<_, RequestError>(app.engine.me(bearer(&headers)?, now).await?) }.await;
    match result {
        Ok((claims, user)) => {
            let mut me = standard::Me {
                id: claims.sub,
                token_use: claims.token_use.as_str().into(),
                client_id: claims.client_id,
                scope: claims.scope,
                partner_id: claims.partner_id,
                org_code: claims.org_code,
                account_id: claims.account_id,
                role: claims.role,
                ..standard::Me::default()
            };
            if let Some(u) = user {
                if u.role == tessera_core::model::Role::Customer {
                    me.phone_number = Some(u.username.clone());
                }
                me.username = Some(u.username);
                me.first_name = u.first_name;
                me.last_name = u.last_name;
                me.client_user_id = u.external_id;
            }
            let mut r = axum::Json(standard::Data { data: me }).into_response();
            crate::app::no_store(&mut r);
            r
        }
        Err(e) => render_resource(&e),
    }
}

/// OpenID Connect UserInfo (Core §5.3), `GET` or `POST`, with the access token of an `openid`
/// sign-in in `Authorization: Bearer`.
#[utoipa::path(get, operation_id = "userinfo", path = "/oauth/userinfo", tag = "openid",
    responses((status = 200, description = "Claims about the signed-in user",
        body = tessera_core::userinfo::UserInfo)))]
pub async fn userinfo(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let now = unix_now();
    let result =
        async { Ok::<_, RequestError>(app.engine.userinfo(bearer(&headers)?, now).await?) }.await;
    match result {
        Ok(info) => {
            let mut r = axum::Json(info).into_response();
            crate::app::no_store(&mut r);
            r
        }
        Err(e) => render_resource(&e),
    }
}
