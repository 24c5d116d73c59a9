//! Seed 002's resource endpoints, protected by bearer tokens (RFC 6750):
//! `POST /v2/api/users/sign-up` (app_token only) and `GET /api/users/me` (any Tessera token);
//! and OpenID Connect's `/oauth/userinfo` (an `openid` sign-in's access token).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::unix_now;
use tessera_core::users::SignUp;

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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignUpRequest {
    phone_number: String,
    first_name: Option<String>,
    last_name: Option<String>,
    client_user_id: Option<String>,
}

#[utoipa::path(post, operation_id = "sign_up", path = "/v2/api/users/sign-up", tag = "standard", request_body = SignUpRequest,
    responses(
        (status = 201, description = "Signed up; clientUserToken is the buyer's password, shown once",
            body = super::openapi::SignedUpEnvelope),
        (status = 200, description = "The phone number was known: its user, with a new clientUserToken",
            body = super::openapi::SignedUpEnvelope),
    ))]
pub async fn sign_up(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let app_token = app.engine.require_app_token(bearer(&headers)?, now)?;
        let req: SignUpRequest = parse_json(bytes(&body)?)?;
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
            let mut r = (
                status,
                axum::Json(json!({"data": {
                    "id": s.user.id,
                    "phoneNumber": s.user.username,
                    "preExistingUser": s.pre_existing,
                    "clientUserToken": s.client_user_token.expose(),
                }})),
            )
                .into_response();
            crate::app::no_store(&mut r);
            r
        }
        Err(e) => render_resource(&e),
    }
}

#[utoipa::path(get, operation_id = "me", path = "/api/users/me", tag = "standard",
    responses((status = 200, description = "Who the token speaks for", body = super::openapi::MeEnvelope)))]
pub async fn me(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let now = unix_now();
    let result =
        async { Ok::<_, RequestError>(app.engine.me(bearer(&headers)?, now).await?) }.await;
    match result {
        Ok((claims, user)) => {
            let mut data = json!({
                "id": claims.sub,
                "tokenUse": claims.token_use,
                "clientId": claims.client_id,
                "scope": claims.scope,
            });
            let map = data.as_object_mut().expect("object");
            for (k, v) in [
                ("partnerId", claims.partner_id),
                ("orgCode", claims.org_code),
                ("accountId", claims.account_id),
                ("role", claims.role),
            ] {
                if let Some(v) = v {
                    map.insert(k.into(), Value::String(v));
                }
            }
            if let Some(u) = user {
                map.insert("username".into(), u.username.clone().into());
                if u.role == tessera_core::model::Role::Customer {
                    map.insert("phoneNumber".into(), u.username.into());
                }
                for (k, v) in [
                    ("firstName", u.first_name),
                    ("lastName", u.last_name),
                    ("clientUserId", u.external_id),
                ] {
                    if let Some(v) = v {
                        map.insert(k.into(), Value::String(v));
                    }
                }
            }
            let mut r = axum::Json(json!({ "data": data })).into_response();
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
