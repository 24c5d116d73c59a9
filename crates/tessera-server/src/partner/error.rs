//! The partner dialect's one mapping from [`RequestError`] to the wire (README, *Partner dialect*): status, code,
//! message and details. Every handler (and the `/v2/` fallback) renders its errors through
//! [`render`] or [`not_found`]; no handler builds an error body by hand.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tessera_core::jwt::JwtError;
use tessera_core::{EngineError, Field};
use tessera_proto::partner::{ErrorBody, ErrorDetail, ErrorEnvelope, Meta, codes};

use crate::error::{RequestError, set_retry_after};
use crate::wire::token_type_name;

/// Status, code and message of an error in the partner dialect.
pub fn classify(e: &RequestError) -> (StatusCode, &'static str, String) {
    match e {
        RequestError::Engine(e) => classify_engine(e),
        RequestError::Invalid(_) => invalid(),
        RequestError::BodyTooLarge(limit) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::VALIDATION_FAILED,
            format!("the request body is larger than {limit} bytes"),
        ),
        RequestError::UnsupportedGrantType(g) => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_INVALID_GRANT_TYPE,
            format!(
                "grant_type {g:?} is not supported here: use client_credentials, \
                 {}, refresh_token or authorization_code",
                tessera_proto::grant_type::TOKEN_EXCHANGE
            ),
        ),
        RequestError::AuthorizationHeader(why) => (
            StatusCode::UNAUTHORIZED,
            codes::OAUTH_AUTHORIZATION_HEADER_INVALID,
            format!(
                "{why}: send Authorization: Basic base64(email:password) or Bearer <partner token>"
            ),
        ),
    }
}

fn invalid() -> (StatusCode, &'static str, String) {
    (
        StatusCode::BAD_REQUEST,
        codes::VALIDATION_FAILED,
        "the request is invalid; see details for each field".into(),
    )
}

fn classify_engine(e: &EngineError) -> (StatusCode, &'static str, String) {
    use EngineError as E;
    match e {
        E::Validation(_) => invalid(),
        E::InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            codes::OAUTH_PARTNER_NOT_FOUND,
            "no partner matches this email and password".into(),
        ),
        E::Locked { .. } => (
            StatusCode::UNAUTHORIZED,
            codes::OAUTH_PARTNER_NOT_FOUND,
            "too many failed sign-ins for this email; retry after the Retry-After delay".into(),
        ),
        E::InvalidClient(_) | E::InvalidUserCredentials => (
            StatusCode::UNAUTHORIZED,
            codes::OAUTH_PARTNER_NOT_FOUND,
            "no partner matches these credentials".into(),
        ),
        E::UnauthorizedClient(grant) => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_INVALID_GRANT_TYPE,
            format!(
                "grant_type {} is not available to partners; use client_credentials, token exchange or refresh_token",
                grant.wire()
            ),
        ),
        E::InvalidGrant(why) => (
            StatusCode::BAD_REQUEST,
            codes::VALIDATION_FAILED,
            (*why).into(),
        ),
        E::InvalidTarget => (
            StatusCode::BAD_REQUEST,
            codes::VALIDATION_FAILED,
            "the requested audience is not served here".into(),
        ),
        E::Forbidden(why) => (
            StatusCode::FORBIDDEN,
            codes::OAUTH_SCOPE_FORBIDDEN,
            (*why).into(),
        ),
        E::AuthorizationRequest {
            failure,
            description,
        } => (
            crate::error::authorization_request_status(*failure),
            authorize_error(*failure),
            description.clone(),
        ),
        E::InvalidPartnerToken => (
            StatusCode::UNAUTHORIZED,
            codes::OAUTH_INVALID_PARTNER_TOKEN,
            "the partner token is unknown, expired or revoked; ask your manager for a valid one"
                .into(),
        ),
        E::PartnerInactive => (
            StatusCode::FORBIDDEN,
            codes::OAUTH_PARTNER_INACTIVE,
            "the partner account is inactive; contact your manager to activate it".into(),
        ),
        E::TokenInvalid(why) => (
            StatusCode::UNAUTHORIZED,
            codes::OAUTH_TOKEN_INVALID_OR_EXPIRED,
            match why {
                JwtError::Expired => {
                    "the token has expired; obtain a new one and repeat the request".into()
                }
                _ => "the token is malformed or its signature does not verify".into(),
            },
        ),
        E::TokenUnknownOrRevoked => (
            StatusCode::UNAUTHORIZED,
            codes::OAUTH_TOKEN_UNKNOWN_OR_REVOKED,
            "the token is unknown or has been revoked; obtain a new one".into(),
        ),
        E::SubjectTokenTypeMismatch { expected } => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_SUBJECT_TOKEN_TYPE_MISMATCH,
            format!(
                "subject_token must be a machine token and subject_token_type must be {}",
                token_type_name(*expected)
            ),
        ),
        E::RequestedSubjectMismatch => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_REQUESTED_SUBJECT_MISMATCH,
            "the machine token was issued to another partner; use your own machine token".into(),
        ),
        E::NotPartnersResource(what) => (
            StatusCode::FORBIDDEN,
            codes::OAUTH_CLIENT_NOT_BELONG_TO_PARTNER,
            format!("the {what} does not belong to your partner account"),
        ),
        E::ScopeForbidden(scopes) => (
            StatusCode::FORBIDDEN,
            codes::OAUTH_SCOPE_FORBIDDEN,
            format!(
                "scope not permitted: {}; agree the required scopes with your manager",
                scopes.join(" ")
            ),
        ),
        E::RefreshTokenInvalid(why) => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_REFRESH_TOKEN_INVALID,
            format!("the refresh token cannot be used: {why}"),
        ),
        E::AuthorizationCodeInvalid(why) => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_AUTHORIZATION_CODE_INVALID,
            format!("the authorization code cannot be used: {why}; request a new one"),
        ),
        E::CodeVerifierInvalid(why) => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_CODE_VERIFIER_INVALID,
            format!("{why}; send the code_verifier you generated for this authorization"),
        ),
        E::RedirectUriMismatch => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_REDIRECT_URI_MISMATCH,
            "redirect_uri must be the one used in the authorization request".into(),
        ),
        E::MissingGrant => (
            StatusCode::FORBIDDEN,
            codes::OAUTH_MISSING_GRANT,
            "the user has not granted access or has revoked it; run the authorization again".into(),
        ),
        E::ClientIdMismatch => (
            StatusCode::BAD_REQUEST,
            codes::OAUTH_CLIENT_ID_MISMATCH,
            "the token was issued to another client".into(),
        ),
        E::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            codes::TOO_MANY_REQUESTS,
            "too many token requests; cache tokens and retry after the Retry-After delay".into(),
        ),
        E::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            "the service is temporarily unavailable; retry shortly".into(),
        ),
        E::Busy { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            codes::SERVICE_UNAVAILABLE,
            "too many sign-ins are being checked right now; retry after the Retry-After delay"
                .into(),
        ),
        E::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL_ERROR,
            "an internal error occurred; it has been logged".into(),
        ),
    }
}

/// The `error` a failed `/v2/oauth/authorize` redirect carries: seed 000's codes.
pub fn authorize_error(f: tessera_core::authorize::AuthorizeFailure) -> &'static str {
    use tessera_core::authorize::AuthorizeFailure as F;
    match f {
        F::InvalidRequest | F::UnsupportedResponseType => codes::VALIDATION_FAILED,
        F::UnauthorizedClient => codes::OAUTH_INVALID_GRANT_TYPE,
        F::AccessDenied => codes::OAUTH_MISSING_GRANT,
        F::InvalidScope => codes::OAUTH_SCOPE_FORBIDDEN,
        F::CodeChallengeMethodUnsupported => codes::OAUTH_CODE_CHALLENGE_METHOD_UNSUPPORTED,
        F::ServerError => codes::INTERNAL_ERROR,
        // OpenID Connect Core §3.1.2.6's codes: relying-party libraries act on them.
        F::LoginRequired => "login_required",
        F::ConsentRequired => "consent_required",
        F::RequestNotSupported => "request_not_supported",
        F::RequestUriNotSupported => "request_uri_not_supported",
    }
}

/// Render `e` as the partner dialect's error envelope.
pub fn render(e: &RequestError, now: i64) -> Response {
    let (status, code, message) = classify(e);
    crate::metrics::error("partner", code);
    let details = e.invalid_fields(wire_field).map(|fields| {
        fields
            .into_iter()
            .map(|f| ErrorDetail {
                field: f.field,
                message: f.message,
            })
            .collect()
    });
    let mut response = envelope(status, code, message, details, now);
    set_retry_after(&mut response, e);
    response
}

/// The answer to a `/v2/` path that does not exist.
pub fn not_found(now: i64) -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        "no such endpoint; see the README for the partner API".into(),
        None,
        now,
    )
}

/// Where the partner dialect's requests carry each field the engine checks: a grant's fields
/// nest under its `*_data` object.
fn wire_field(field: Field) -> &'static str {
    match field {
        Field::Name => "name",
        Field::ExternalId => "external_id",
        Field::Limit => "limit",
        Field::Cursor => "cursor",
        Field::Email => "email",
        Field::Password => "password",
        Field::AccountName => "account_name",
        Field::PhoneNumber => "phone_number",
        Field::FirstName => "first_name",
        Field::LastName => "last_name",
        Field::ClientUserId => "client_user_id",
        Field::Scope => "scope",
        Field::ClientId => "authorization_code_data.client_id",
        Field::RequestedSubject => "token_exchange_data.requested_subject",
    }
}

fn envelope(
    status: StatusCode,
    code: &str,
    message: String,
    details: Option<Vec<ErrorDetail>>,
    now: i64,
) -> Response {
    let body = ErrorEnvelope {
        error: ErrorBody {
            code: code.to_string(),
            message,
            details,
        },
        meta: Meta { timestamp: now },
    };
    (status, axum::Json(body)).into_response()
}
