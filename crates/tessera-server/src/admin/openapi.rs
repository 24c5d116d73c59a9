//! What the admin API's OpenAPI document says of every operation without each path repeating
//! it: the admin-token bearer scheme, and the RFC 9457 problems any call may answer.

use utoipa::Modify;
use utoipa::openapi::security::HttpAuthScheme;

pub struct Conventions;

/// The problems every call may answer (a call answers only those its route can reach, but
/// the token check, the body reader and the store are shared by all).
const PROBLEMS: [(&str, &str); 8] = [
    ("400", "The body or query could not be read (`bad-request`)"),
    ("401", "No live admin token (`unauthenticated`)"),
    ("403", "The token lacks the scope (`insufficient-scope`)"),
    ("404", "Not found (`not-found`)"),
    ("409", "Already exists, or an Idempotency-Key conflict"),
    ("413", "The body is over 64 KiB (`too-large`)"),
    ("422", "The input was refused (`validation`)"),
    ("503", "Temporarily unavailable (`unavailable`)"),
];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        crate::openapi::add_auth(openapi, &[("admin_token", HttpAuthScheme::Bearer)]);
        crate::openapi::add_errors(
            openapi,
            "ProblemBody",
            "application/problem+json",
            &PROBLEMS,
        );
    }
}
