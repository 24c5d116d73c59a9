//! The standard dialect's mappings from [`EngineError`] to the wire (README, *Standard
//! dialect*): RFC 6749 §5.2 for the token, introspection and revocation endpoints ([`render`]),
//! and RFC 6750 §3.1 for the bearer-protected resource endpoints ([`render_resource`]). Both
//! answer `{"error", "error_description"}`, the description within RFC 6749's characters; no
//! handler builds an error body by hand.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::{EngineError, Field};

use crate::error::{RequestError, set_retry_after};
use crate::wire::token_type_name;

/// Status, RFC error code and description at the token endpoint.
pub fn classify(e: &RequestError) -> (StatusCode, &'static str, String) {
    match e {
        RequestError::Engine(e) => classify_engine(e),
        RequestError::Invalid(fields) => (
            StatusCode::BAD_REQUEST,
            "invalid_request",
            described(
                fields
                    .iter()
                    .map(|f| (f.field.as_str(), f.message.as_str())),
            ),
        ),
        RequestError::BodyTooLarge(n) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the request body is larger than {n} bytes"),
        ),
        RequestError::UnsupportedGrantType(g) => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!(
                "grant_type {g:?} is not supported: use authorization_code, client_credentials, \
                 password, refresh_token or {}",
                tessera_proto::grant_type::TOKEN_EXCHANGE
            ),
        ),
        RequestError::AuthorizationHeader(why) => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!(
                "{why}: authenticate the client with HTTP Basic (client_id:client_secret) or client_id and client_secret in the form"
            ),
        ),
    }
}

fn classify_engine(e: &EngineError) -> (StatusCode, &'static str, String) {
    use EngineError as E;
    let bad = StatusCode::BAD_REQUEST;
    match e {
        E::Validation(fields) => (
            bad,
            "invalid_request",
            described(
                fields
                    .iter()
                    .map(|f| (wire_field(f.field), f.message.as_str())),
            ),
        ),
        E::InvalidClient(why) => (StatusCode::UNAUTHORIZED, "invalid_client", (*why).into()),
        E::InvalidCredentials | E::InvalidPartnerToken => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret".into(),
        ),
        E::InvalidUserCredentials => (
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "wrong username or password".into(),
        ),
        E::Locked { .. } => (
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
            "too many failed sign-ins for this username; retry after the Retry-After delay".into(),
        ),
        E::PartnerInactive => (
            bad,
            "unauthorized_client",
            "the client's organisation is inactive".into(),
        ),
        E::UnauthorizedClient(grant) => (
            bad,
            "unauthorized_client",
            format!(
                "this client is not registered for the {} grant",
                grant.wire()
            ),
        ),
        E::TokenInvalid(_) => (
            bad,
            "invalid_grant",
            "the presented token is malformed, expired or its signature does not verify".into(),
        ),
        E::TokenUnknownOrRevoked => (
            bad,
            "invalid_grant",
            "the presented token is unknown or revoked".into(),
        ),
        E::SubjectTokenTypeMismatch { expected } => (
            bad,
            "invalid_request",
            format!(
                "subject_token_type does not match the subject token; use {}",
                token_type_name(*expected)
            ),
        ),
        E::RequestedSubjectMismatch => (
            bad,
            "invalid_grant",
            "the presented token belongs to another organisation".into(),
        ),
        E::NotPartnersResource(what) => (
            bad,
            "invalid_grant",
            format!("the {what} does not belong to the client's organisation"),
        ),
        E::ScopeForbidden(scopes) => (
            bad,
            "invalid_scope",
            format!("scope not permitted for this client: {}", scopes.join(" ")),
        ),
        E::RefreshTokenInvalid(why) => (
            bad,
            "invalid_grant",
            format!("the refresh token cannot be used: {why}"),
        ),
        E::ClientIdMismatch => (
            bad,
            "invalid_grant",
            "the token was issued to another client".into(),
        ),
        E::InvalidGrant(why) => (bad, "invalid_grant", (*why).into()),
        E::AuthorizationCodeInvalid(why) => (
            bad,
            "invalid_grant",
            format!("the authorization code cannot be used: {why}"),
        ),
        E::CodeVerifierInvalid(why) => (bad, "invalid_grant", (*why).into()),
        E::RedirectUriMismatch => (
            bad,
            "invalid_grant",
            "redirect_uri must be the one used in the authorization request".into(),
        ),
        E::MissingGrant => (
            bad,
            "invalid_grant",
            "the user has not granted access or has revoked it".into(),
        ),
        E::InvalidTarget => (
            bad,
            "invalid_target",
            "the requested audience is not served by this authorization server".into(),
        ),
        E::Forbidden(why) => (StatusCode::FORBIDDEN, "insufficient_scope", (*why).into()),
        E::AuthorizationRequest {
            failure,
            description,
        } => (
            crate::error::authorization_request_status(*failure),
            authorize_error(*failure),
            description.clone(),
        ),
        E::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many token requests; cache tokens and retry after the Retry-After delay".into(),
        ),
        E::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the service is temporarily unavailable; retry shortly".into(),
        ),
        E::Busy { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "too many sign-ins are being checked right now; retry after the Retry-After delay"
                .into(),
        ),
        E::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "an internal error occurred; it has been logged".into(),
        ),
    }
}

/// The answer to a path outside the partner API that does not exist.
pub fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not_found", "error_description": "no such endpoint"})),
    )
        .into_response()
}

/// `field: what is wrong` for each refused field, as one description.
fn described<'a>(fields: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    fields
        .map(|(field, message)| format!("{field}: {message}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the standard dialect's requests carry each field the engine checks: the sign-up
/// body names its fields in camelCase.
fn wire_field(field: Field) -> &'static str {
    match field {
        Field::Name => "name",
        Field::ExternalId => "external_id",
        Field::Limit => "limit",
        Field::Cursor => "cursor",
        Field::Email => "email",
        Field::Password => "password",
        Field::AccountName => "account_name",
        Field::PhoneNumber => "phoneNumber",
        Field::FirstName => "firstName",
        Field::LastName => "lastName",
        Field::ClientUserId => "clientUserId",
        Field::Scope => "scope",
        Field::ClientId => "client_id",
        Field::RequestedSubject => "requested_subject",
    }
}

fn body(status: StatusCode, code: &str, description: &str) -> Response {
    let description = crate::wire::error_description(description);
    let mut r = (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    crate::app::no_store(&mut r);
    r
}

/// The `error` a failed `/oauth/authorize` redirect carries (RFC 6749 §4.1.2.1).
pub fn authorize_error(f: tessera_core::authorize::AuthorizeFailure) -> &'static str {
    use tessera_core::authorize::AuthorizeFailure as F;
    match f {
        F::InvalidRequest | F::CodeChallengeMethodUnsupported => "invalid_request",
        F::UnauthorizedClient => "unauthorized_client",
        F::AccessDenied => "access_denied",
        F::UnsupportedResponseType => "unsupported_response_type",
        F::InvalidScope => "invalid_scope",
        F::ServerError => "server_error",
        // OpenID Connect Core §3.1.2.6's codes: relying-party libraries act on them.
        F::LoginRequired => "login_required",
        F::ConsentRequired => "consent_required",
        F::RequestNotSupported => "request_not_supported",
        F::RequestUriNotSupported => "request_uri_not_supported",
    }
}

/// Render `e` at the token, introspection or revocation endpoint.
pub fn render(e: &RequestError) -> Response {
    let (status, code, description) = classify(e);
    crate::metrics::error("standard", code);
    let mut r = body(status, code, &description);
    if code == "invalid_client" {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tessera\""),
        );
    }
    set_retry_after(&mut r, e);
    r
}

/// Render `e` at a bearer-protected resource endpoint (RFC 6750 §3.1).
pub fn render_resource(e: &RequestError) -> Response {
    use EngineError as E;
    use RequestError as R;
    let (status, code, description) = match e {
        R::AuthorizationHeader(why) => (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            format!("{why}: send Authorization: Bearer <access token>"),
        ),
        R::Engine(E::TokenInvalid(_) | E::TokenUnknownOrRevoked) => (
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is malformed, expired, unknown or revoked".into(),
        ),
        R::Engine(E::PartnerInactive) => (
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the organisation is inactive".into(),
        ),
        other => classify(other),
    };
    let mut r = body(status, code, &description);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let challenge = format!(
            "Bearer realm=\"tessera\", error=\"{code}\", error_description=\"{}\"",
            crate::wire::error_description(&description)
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    set_retry_after(&mut r, e);
    r
}
