//! Authorization server metadata (RFC 8414) and OpenID Provider metadata (OpenID Connect
//! Discovery 1.0 §3), one document served at both well-known paths. It lists only what is
//! implemented: every endpoint, grant, authentication method and scope, and says `false` where
//! Discovery's default would claim a feature Tessera lacks (`request_uri_parameter_supported`).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::model::GrantType;
use tessera_core::scope::OPENID_SCOPES;
use tessera_core::userinfo::CLAIMS_SUPPORTED;

use crate::app::AppState;

#[utoipa::path(get, operation_id = "discovery", path = "/.well-known/openid-configuration", tag = "openid",
    responses((status = 200, description = "OpenID Provider and RFC 8414 metadata (one document)",
        body = Object)))]
pub async fn metadata(State(app): State<AppState>) -> Response {
    let config = app.engine.config();
    let iss = &config.issuer;
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    // The registered scopes and OpenID Connect's, which every authorization-code client has.
    let registered = app.engine.scopes();
    let mut scopes: Vec<&str> = registered.iter().map(String::as_str).collect();
    for (name, _) in OPENID_SCOPES {
        if !scopes.contains(&name) {
            scopes.push(name);
        }
    }
    let body = json!({
        "issuer": iss,
        "token_endpoint": format!("{iss}/oauth/token"),
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{iss}/oauth/introspect"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        // RFC 9126 §5: clients registered with --require-par must push; others may.
        "pushed_authorization_request_endpoint": format!("{iss}/oauth/par"),
        "require_pushed_authorization_requests": false,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "authorization_response_iss_parameter_supported": true,
        // Every client accepts S256; `plain` only clients registered with `--pkce s256,plain`.
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": [
            GrantType::AuthorizationCode.wire(),
            GrantType::ClientCredentials.wire(),
            GrantType::Password.wire(),
            GrantType::RefreshToken.wire(),
            GrantType::TokenExchange.wire(),
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "scopes_supported": scopes,
        "access_token_signing_alg_values_supported": ["ES256", "EdDSA", "RS256"],
        // OpenID Connect Discovery §3.
        "userinfo_endpoint": format!("{iss}/oauth/userinfo"),
        "subject_types_supported": ["public"],
        // ID tokens come from their own RS256 key lane (see tessera_core::keys::KeyUse).
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    });
    let mut r = axum::Json(body).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
