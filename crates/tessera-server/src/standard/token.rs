//! `POST /oauth/token` (RFC 6749 §3.2, §5; RFC 8693 §2): form in, `{"access_token",
//! "token_type": "bearer", "expires_in", "scope"?, "refresh_token"?}` out, `Cache-Control:
//! no-store`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::grants::token_exchange::TokenType;
use tessera_core::grants::{self, GrantRequest};
use tessera_core::model::GrantType;
use tessera_core::scope::ScopeSet;
use tessera_core::unix_now;
use tessera_proto::standard::{OAuthError, TokenForm, TokenResponse};
use tessera_proto::token_type;

use super::form::Form;
use super::{client_request, error};
use crate::app::AppState;
use crate::body::{RawBody, bytes};
use crate::error::RequestError;
use crate::wire::{self, parse_scope, token_type_from_wire};

#[utoipa::path(post, operation_id = "oauth_token", path = "/oauth/token", tag = "standard",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 401, description = "invalid_client", body = OAuthError),
    ))]
pub async fn token(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let (caller, mut form) = client_request(&app.engine, &headers, bytes(&body)?).await?;
        let requested_scope = form.get("scope").map(str::to_string);
        let request = parse(&mut form)?;
        let exchange = matches!(request, GrantRequest::TokenExchange(_));
        let issued = app.engine.grant(&caller, request, now).await?;
        Ok::<_, RequestError>((issued, requested_scope, exchange))
    }
    .await;
    match result {
        Ok((issued, requested_scope, exchange)) => {
            // RFC 6749 §5.1: scope is required only when it differs from what was asked.
            let granted = issued.scope.to_claim();
            let asked = requested_scope.and_then(|s| ScopeSet::parse(&s).ok());
            let out = TokenResponse {
                access_token: issued.access_token,
                token_type: "bearer".into(),
                expires_in: issued.expires_in,
                scope: (asked.map(|a| a.to_claim()) != Some(granted.clone())).then_some(granted),
                refresh_token: issued.refresh_token.map(|r| r.expose().to_string()),
                id_token: issued.id_token,
                issued_token_type: exchange.then(|| token_type::ACCESS_TOKEN.to_string()),
            };
            let mut r = (StatusCode::OK, axum::Json(out)).into_response();
            crate::app::no_store(&mut r);
            r
        }
        Err(e) => error::render(&e),
    }
}

fn scope(form: &mut Form) -> Result<ScopeSet, RequestError> {
    match form.take("scope") {
        None => Ok(ScopeSet::default()),
        Some(s) => parse_scope(&s, "scope"),
    }
}

fn bounded(form: &mut Form, name: &str) -> Result<String, RequestError> {
    let v = form.require(name)?;
    wire::bounded(&v, name)?;
    Ok(v)
}

/// RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6 and RFC 8693 §2.1 `grant_type` values.
fn grant_type_from_wire(s: &str) -> Option<GrantType> {
    GrantType::ALL.into_iter().find(|g| g.wire() == s)
}

/// The standard dialect's form → the engine's [`GrantRequest`].
pub fn parse(form: &mut Form) -> Result<GrantRequest, RequestError> {
    let grant_type = form.require("grant_type")?;
    match grant_type_from_wire(&grant_type) {
        Some(GrantType::AuthorizationCode) => Ok(GrantRequest::AuthorizationCode(
            grants::authorization_code::Request {
                client_id: None,
                code: bounded(form, "code")?,
                redirect_uri: form.take("redirect_uri"),
                code_verifier: form.take("code_verifier"),
            },
        )),
        Some(GrantType::ClientCredentials) => Ok(GrantRequest::ClientCredentials(
            grants::client_credentials::Request {
                scope: scope(form)?,
            },
        )),
        Some(GrantType::Password) => Ok(GrantRequest::Password(grants::password::Request {
            username: bounded(form, "username")?,
            password: bounded(form, "password")?,
            scope: scope(form)?,
        })),
        Some(GrantType::RefreshToken) => {
            Ok(GrantRequest::RefreshToken(grants::refresh_token::Request {
                refresh_token: bounded(form, "refresh_token")?,
                scope: Some(scope(form)?),
            }))
        }
        Some(GrantType::TokenExchange) => {
            let actor_token = match form.take("actor_token") {
                Some(t) => {
                    let kind = form.require("actor_token_type")?;
                    if token_type_from_wire(&kind) == TokenType::Unrecognised {
                        return Err(RequestError::field(
                            "actor_token_type",
                            format!("must be {}", token_type::ACCESS_TOKEN),
                        ));
                    }
                    Some(t)
                }
                None => None,
            };
            if let Some(t) = form.take("requested_token_type")
                && t != token_type::ACCESS_TOKEN
            {
                return Err(RequestError::field(
                    "requested_token_type",
                    format!("only {} can be requested", token_type::ACCESS_TOKEN),
                ));
            }
            Ok(GrantRequest::TokenExchange(
                grants::token_exchange::Request {
                    subject_token: bounded(form, "subject_token")?,
                    subject_token_type: token_type_from_wire(&bounded(form, "subject_token_type")?),
                    requested_subject: form.take("requested_subject"),
                    scope: scope(form)?,
                    actor_token,
                    audience: form.take("audience"),
                },
            ))
        }
        None => Err(RequestError::UnsupportedGrantType(wire::truncate(
            &grant_type,
        ))),
    }
}
