//! Authorization server metadata (RFC 8414), served at both well-known paths. It lists only what
//! is implemented: every endpoint, grant, authentication method and registered scope.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::model::GrantType;

use crate::app::AppState;

pub async fn metadata(State(app): State<AppState>) -> Response {
    let config = app.engine.config();
    let iss = &config.issuer;
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    let body = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth/token"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{iss}/oauth/introspect"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "authorization_response_iss_parameter_supported": true,
        // Every client accepts S256; `plain` only clients registered with `--pkce s256,plain`.
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": [
            GrantType::AuthorizationCode.as_str(),
            GrantType::ClientCredentials.as_str(),
            GrantType::Password.as_str(),
            GrantType::RefreshToken.as_str(),
            GrantType::TokenExchange.as_str(),
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": *app.engine.scopes(),
        "access_token_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
    });
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
