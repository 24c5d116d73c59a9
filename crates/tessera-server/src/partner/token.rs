//! `POST /v2/oauth/token`: parse the partner dialect's JSON into a [`GrantRequest`], run it, and
//! render the result. RFC 6749 §5.1 / RFC 8693 §2.2 in seed 000's envelope.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tessera_core::grants::{self, GrantRequest, Issued};
use tessera_core::scope::ScopeSet;
use tessera_core::{Caller, unix_now};
use tessera_proto::grant_type;
use tessera_proto::partner::{TokenRequest, TokenResponse};

use super::{auth, error, ok};
use crate::app::AppState;
use crate::body::{RawBody, json};
use crate::error::RequestError;
use crate::wire::{bounded, parse_scope, token_type_from_wire, truncate};

#[utoipa::path(post, operation_id = "partner_token", path = "/v2/oauth/token", tag = "partner",
    request_body = tessera_proto::partner::TokenRequest,
    responses((status = 200, description = "A token (and, for an exchange or a code, a refresh token)",
        body = tessera_proto::partner::Envelope<tessera_proto::partner::TokenResponse>)))]
pub async fn token(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    match run(&app, &headers, &body, now).await {
        Ok(issued) => ok(
            StatusCode::OK,
            TokenResponse {
                access_token: issued.access_token,
                refresh_token: issued.refresh_token.map(|r| r.expose().to_string()),
                token_type: "Bearer".into(),
                expires_in: issued.expires_in,
                id_token: issued.id_token,
            },
            now,
        ),
        Err(e) => error::render(&e, now),
    }
}

async fn run(
    app: &AppState,
    headers: &HeaderMap,
    body: &RawBody,
    now: i64,
) -> Result<Issued, RequestError> {
    let partner = auth::partner(&app.engine, headers, now).await?;
    let request = parse(json(headers, body)?)?;
    Ok(app
        .engine
        .grant(&Caller::Partner(partner), request, now)
        .await?)
}

/// The partner dialect's wire request → the engine's [`GrantRequest`].
pub fn parse(req: TokenRequest) -> Result<GrantRequest, RequestError> {
    let grant_type = req
        .grant_type
        .ok_or_else(|| RequestError::field("grant_type", "is required"))?;
    let missing = |field: &str| {
        RequestError::field(field, format!("is required for grant_type {grant_type}"))
    };
    match grant_type.as_str() {
        grant_type::CLIENT_CREDENTIALS => {
            let data = req
                .client_credentials_data
                .ok_or_else(|| missing("client_credentials_data"))?;
            Ok(GrantRequest::ClientCredentials(
                grants::client_credentials::Request {
                    scope: scope(&data.scope, "client_credentials_data.scope")?,
                },
            ))
        }
        grant_type::TOKEN_EXCHANGE => {
            let data = req
                .token_exchange_data
                .ok_or_else(|| missing("token_exchange_data"))?;
            bounded(&data.subject_token, "token_exchange_data.subject_token")?;
            bounded(
                &data.subject_token_type,
                "token_exchange_data.subject_token_type",
            )?;
            bounded(
                &data.requested_subject,
                "token_exchange_data.requested_subject",
            )?;
            Ok(GrantRequest::TokenExchange(
                grants::token_exchange::Request {
                    scope: scope(&data.scope, "token_exchange_data.scope")?,
                    subject_token: data.subject_token,
                    subject_token_type: token_type_from_wire(&data.subject_token_type),
                    requested_subject: Some(data.requested_subject),
                    actor_token: None,
                    audience: None,
                },
            ))
        }
        grant_type::AUTHORIZATION_CODE => {
            let data = req
                .authorization_code_data
                .ok_or_else(|| missing("authorization_code_data"))?;
            bounded(&data.code, "authorization_code_data.code")?;
            bounded(&data.client_id, "authorization_code_data.client_id")?;
            bounded(&data.redirect_uri, "authorization_code_data.redirect_uri")?;
            Ok(GrantRequest::AuthorizationCode(
                grants::authorization_code::Request {
                    client_id: Some(data.client_id),
                    code: data.code,
                    redirect_uri: Some(data.redirect_uri),
                    code_verifier: data.code_verifier,
                },
            ))
        }
        grant_type::REFRESH_TOKEN => {
            let data = req
                .refresh_token_data
                .ok_or_else(|| missing("refresh_token_data"))?;
            bounded(&data.refresh_token, "refresh_token_data.refresh_token")?;
            Ok(GrantRequest::RefreshToken(grants::refresh_token::Request {
                refresh_token: data.refresh_token,
                scope: None,
            }))
        }
        _ => Err(RequestError::UnsupportedGrantType(truncate(&grant_type))),
    }
}

/// The partner dialect asks for scopes explicitly: an empty list is refused here.
fn scope(s: &str, field: &str) -> Result<ScopeSet, RequestError> {
    let set = parse_scope(s, field)?;
    if set.is_empty() {
        return Err(RequestError::field(field, "request at least one scope"));
    }
    Ok(set)
}
