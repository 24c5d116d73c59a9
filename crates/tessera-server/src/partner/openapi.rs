//! The partner dialect's OpenAPI document.

use tessera_proto::partner::ErrorEnvelope;
use utoipa::Modify;
use utoipa::openapi::security::HttpAuthScheme;

/// The errors every call may answer: seed 000's envelope with its codes.
const ERRORS: [(&str, &str); 9] = [
    (
        "400",
        "VALIDATION_FAILED and the OAUTH_* refusals of the request",
    ),
    (
        "401",
        "OAUTH_AUTHORIZATION_HEADER_INVALID, OAUTH_INVALID_PARTNER_TOKEN, token refusals",
    ),
    (
        "403",
        "OAUTH_PARTNER_INACTIVE, OAUTH_SCOPE_FORBIDDEN, OAUTH_CLIENT_NOT_BELONG_TO_PARTNER",
    ),
    ("404", "NOT_FOUND"),
    ("409", "A conflict (an account's external id already used)"),
    ("413", "VALIDATION_FAILED: the body is over 64 KiB"),
    ("429", "TOO_MANY_REQUESTS, with Retry-After"),
    ("500", "INTERNAL_ERROR"),
    ("503", "SERVICE_UNAVAILABLE, with Retry-After"),
];

struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        crate::openapi::add_auth(
            openapi,
            &[
                ("partner_basic", HttpAuthScheme::Basic),
                ("partner_token", HttpAuthScheme::Bearer),
            ],
        );
        crate::openapi::add_errors(openapi, "ErrorEnvelope", "application/json", &ERRORS);
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tessera partner dialect",
        description = "Seed 000's JSON API: a partner authenticates with Basic email:password or its partner API token."
    ),
    paths(
        super::token::token,
        super::par::par,
        super::revoke::revoke,
        super::accounts::create,
        super::accounts::get,
        super::accounts::list
    ),
    components(schemas(ErrorEnvelope)),
    modifiers(&Conventions)
)]
pub struct PartnerApi;
