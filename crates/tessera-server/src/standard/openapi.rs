//! The standard dialect's OpenAPI document: RFC 6749's endpoints (form in, JSON out), seed
//! 002's bearer-protected sign-up and `me`, and OpenID Connect's UserInfo and discovery.

use tessera_proto::standard::OAuthError;
use utoipa::Modify;
use utoipa::openapi::security::HttpAuthScheme;

const ERRORS: [(&str, &str); 8] = [
    (
        "400",
        "invalid_request, invalid_grant, unsupported_grant_type, invalid_scope, ...",
    ),
    (
        "401",
        "invalid_client (token endpoints) or invalid_token (bearer endpoints)",
    ),
    ("403", "unauthorized_client or insufficient_scope"),
    ("404", "not_found"),
    ("413", "invalid_request: the body is over 64 KiB"),
    ("429", "slow_down / too many requests, with Retry-After"),
    ("500", "server_error"),
    ("503", "temporarily_unavailable, with Retry-After"),
];

struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        crate::openapi::add_auth(
            openapi,
            &[
                ("client_basic", HttpAuthScheme::Basic),
                ("bearer", HttpAuthScheme::Bearer),
            ],
        );
        crate::openapi::add_errors(openapi, "OAuthError", "application/json", &ERRORS);
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tessera standard dialect",
        description = "RFC 6749 (form-encoded, client_secret_basic or _post), seed 002's resource endpoints, OpenID Connect."
    ),
    paths(
        super::token::token,
        super::par::par,
        super::introspect::introspect,
        super::revoke::revoke,
        super::users::sign_up,
        super::users::me,
        super::users::userinfo,
        super::discovery::metadata,
        crate::operational::jwks
    ),
    components(schemas(OAuthError)),
    modifiers(&Conventions)
)]
pub struct StandardApi;
