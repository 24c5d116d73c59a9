//! `POST /oauth/token` (RFC 6749 §3.2, §5; RFC 8693 §2): form in, `{"access_token",
//! "token_type": "bearer", "expires_in", "scope"?, "refresh_token"?}` out, `Cache-Control:
//! no-store`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use tessera_core::grants::token_exchange::ACCESS_TOKEN_TYPE;
use tessera_core::grants::{self, GrantRequest};
use tessera_core::model::GrantType;
use tessera_core::policy::MAX_TOKEN_LEN;
use tessera_core::scope::ScopeSet;
use tessera_core::{GrantError, unix_now};

use super::form::Form;
use super::{client_request, error};
use crate::AppState;
use crate::body::{RawBody, bytes};

pub async fn token(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let result = async {
        let (caller, mut form) = client_request(&app.engine, &headers, bytes(&body)?).await?;
        let requested_scope = form.get("scope").map(str::to_string);
        let request = parse(&mut form)?;
        let exchange = matches!(request, GrantRequest::TokenExchange(_));
        let issued = app.engine.grant(&caller, request, now).await?;
        Ok::<_, GrantError>((issued, requested_scope, exchange))
    }
    .await;
    match result {
        Ok((issued, requested_scope, exchange)) => {
            let mut out = Map::new();
            out.insert("access_token".into(), issued.access_token.into());
            out.insert("token_type".into(), "bearer".into());
            out.insert("expires_in".into(), issued.expires_in.into());
            // RFC 6749 §5.1: scope is required only when it differs from what was asked.
            let granted = issued.scope.to_claim();
            let asked = requested_scope.and_then(|s| ScopeSet::parse(&s).ok());
            if asked.map(|a| a.to_claim()) != Some(granted.clone()) {
                out.insert("scope".into(), granted.into());
            }
            if let Some(r) = issued.refresh_token {
                out.insert("refresh_token".into(), r.expose().into());
            }
            if exchange {
                out.insert("issued_token_type".into(), ACCESS_TOKEN_TYPE.into());
            }
            let mut r = (StatusCode::OK, axum::Json(Value::Object(out))).into_response();
            crate::no_store(&mut r);
            r
        }
        Err(e) => error::render(&e),
    }
}

fn scope(form: &mut Form) -> Result<ScopeSet, GrantError> {
    match form.take("scope") {
        None => Ok(ScopeSet::default()),
        Some(s) => ScopeSet::parse(&s).map_err(|e| GrantError::field("scope", e.to_string())),
    }
}

fn bounded(form: &mut Form, name: &str) -> Result<String, GrantError> {
    let v = form.require(name)?;
    if v.len() > MAX_TOKEN_LEN {
        return Err(GrantError::field(
            name,
            format!("must be at most {MAX_TOKEN_LEN} bytes"),
        ));
    }
    Ok(v)
}

/// The standard dialect's form → the engine's [`GrantRequest`].
pub fn parse(form: &mut Form) -> Result<GrantRequest, GrantError> {
    let grant_type = form.require("grant_type")?;
    match GrantType::parse(&grant_type) {
        Some(GrantType::AuthorizationCode) => Ok(GrantRequest::AuthorizationCode(
            grants::authorization_code::Request {
                client_id: None,
                code: bounded(form, "code")?,
                redirect_uri: form.take("redirect_uri"),
                code_verifier: form.take("code_verifier"),
            },
        )),
        Some(GrantType::ClientCredentials) if grant_type == "client_credentials" => Ok(
            GrantRequest::ClientCredentials(grants::client_credentials::Request {
                scope: scope(form)?,
            }),
        ),
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
        Some(GrantType::TokenExchange) if grant_type == GrantType::TOKEN_EXCHANGE_URN => {
            let actor = match form.take("actor_token") {
                Some(t) => Some((t, form.require("actor_token_type")?)),
                None => None,
            };
            Ok(GrantRequest::TokenExchange(
                grants::token_exchange::Request {
                    subject_token: bounded(form, "subject_token")?,
                    subject_token_type: bounded(form, "subject_token_type")?,
                    requested_subject: form.take("requested_subject"),
                    scope: scope(form)?,
                    actor,
                    audience: form.take("audience"),
                    requested_token_type: form.take("requested_token_type"),
                },
            ))
        }
        _ => Err(GrantError::UnsupportedGrantType(
            grant_type.chars().take(64).collect(),
        )),
    }
}
