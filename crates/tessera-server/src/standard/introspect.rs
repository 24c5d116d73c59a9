//! `POST /oauth/introspect` (RFC 7662), client-authenticated. `{"active": false}` for anything
//! expired, revoked, malformed, foreign or unknown; the token's claims when active.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_core::introspect::Introspection;
use tessera_core::unix_now;

use super::{client_request, error};
use crate::app::AppState;
use crate::body::{RawBody, bytes};
use crate::error::RequestError;

#[utoipa::path(post, operation_id = "oauth_introspect", path = "/oauth/introspect", tag = "standard",
    request_body(content = tessera_proto::standard::TokenParam,
        content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Whether the token is active, and its claims",
        body = tessera_proto::standard::Introspection)))]
pub async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Response {
    let now = unix_now();
    let result = async {
        let (caller, mut form) = client_request(&app.engine, &headers, bytes(&body)?).await?;
        let token = form.require("token")?;
        Ok::<_, RequestError>(app.engine.introspect(&caller, &token, now).await?)
    }
    .await;
    let body: Value = match result {
        Err(e) => return error::render(&e),
        Ok(Introspection::Inactive) => json!({"active": false}),
        Ok(Introspection::Access(c)) => {
            let mut v = json!({
                "active": true,
                "scope": c.scope,
                "client_id": c.client_id,
                "token_type": "Bearer",
                "exp": c.exp,
                "iat": c.iat,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "jti": c.jti,
                "token_use": c.token_use,
            });
            let map = v.as_object_mut().expect("object");
            for (k, val) in [
                ("partner_id", c.partner_id),
                ("org_code", c.org_code),
                ("account_id", c.account_id),
                ("role", c.role),
                ("sid", c.sid),
            ] {
                if let Some(val) = val {
                    map.insert(k.into(), val.into());
                }
            }
            if let Some(act) = c.act {
                map.insert("act".into(), serde_json::to_value(act).expect("serializes"));
            }
            v
        }
        Ok(Introspection::Refresh(r)) => json!({
            "active": true,
            "scope": r.scope,
            "client_id": r.client_id,
            "exp": r.expires_at,
            "iat": r.issued_at,
            "sub": r.subject,
            "account_id": r.account_id,
            "partner_id": r.partner_id,
        }),
    };
    let mut r = axum::Json(body).into_response();
    crate::app::no_store(&mut r);
    r
}
