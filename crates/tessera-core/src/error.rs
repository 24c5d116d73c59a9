//! The engine's one error type, [`EngineError`]: what grants, sign-in, sign-up, sessions and
//! the other engine operations refuse with. Each variant is a distinct outcome that each dialect
//! maps to its own wire code in exactly one function (`tessera-server`'s `partner::error` and
//! `standard::error`); HTTP-only failures (body size, a malformed header, an unknown
//! `grant_type`) are the server's own. Messages are written for the partner who will read them;
//! internal detail (database errors) goes to the log, never to the wire.

use crate::jwt::JwtError;
use crate::store::StoreError;

/// An input the engine validates. The engine names none of them on the wire: each dialect
/// says where the field sits in its own request (`token_exchange_data.requested_subject`,
/// `phoneNumber`, a form field), in one exhaustive match of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// An account's or a user's display name.
    Name,
    /// A partner's own id for an account.
    ExternalId,
    /// A page size.
    Limit,
    /// A page cursor.
    Cursor,
    Email,
    Password,
    /// The account name of the registration page.
    AccountName,
    PhoneNumber,
    FirstName,
    LastName,
    /// A client's own id for a signed-up customer.
    ClientUserId,
    /// The scopes a grant asks for.
    Scope,
    /// The client an authorization code is redeemed by.
    ClientId,
    /// The end customer a token exchange acts for.
    RequestedSubject,
}

/// A field that failed validation, and what is wrong with it (a sentence for the partner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Field,
    pub message: String,
}

impl FieldError {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the request is invalid")]
    Validation(Vec<FieldError>),
    #[error("wrong credentials")]
    InvalidCredentials,
    /// Client authentication failed (RFC 6749 §5.2 `invalid_client`).
    #[error("client authentication failed: {0}")]
    InvalidClient(&'static str),
    /// Wrong username or password in the password grant.
    #[error("wrong username or password")]
    InvalidUserCredentials,
    /// Too many failed password checks for this username; no password was checked.
    #[error("too many failed attempts")]
    Locked { retry_after_secs: u64 },
    /// The client may not use this grant type.
    #[error("the client may not use {}", .0.name())]
    UnauthorizedClient(crate::model::GrantType),
    /// Any other refusal of a grant (RFC 6749 §5.2 `invalid_grant`).
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// RFC 8693 `invalid_target`: an audience this server does not issue for.
    #[error("the requested audience is not served here")]
    InvalidTarget,
    /// A bearer token of the wrong kind for a resource (RFC 6750 `insufficient_scope`).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("the partner API token is unknown or revoked")]
    InvalidPartnerToken,
    #[error("the partner is inactive")]
    PartnerInactive,
    #[error("the token is invalid or expired: {0}")]
    TokenInvalid(JwtError),
    #[error("the token is unknown or has been revoked")]
    TokenUnknownOrRevoked,
    #[error("subject_token_type must be {expected:?}")]
    SubjectTokenTypeMismatch { expected: crate::model::TokenType },
    #[error("the subject token was issued to another partner")]
    RequestedSubjectMismatch,
    #[error("the {0} does not belong to the calling partner")]
    NotPartnersResource(&'static str),
    #[error("scope not permitted: {}", .0.join(" "))]
    ScopeForbidden(Vec<String>),
    #[error("the refresh token is invalid: {0}")]
    RefreshTokenInvalid(&'static str),
    #[error("the token was issued to another client")]
    ClientIdMismatch,
    #[error("the authorization code is invalid: {0}")]
    AuthorizationCodeInvalid(&'static str),
    #[error("the code verifier is invalid: {0}")]
    CodeVerifierInvalid(&'static str),
    #[error("redirect_uri differs from the authorization request")]
    RedirectUriMismatch,
    /// The user has not granted, or has revoked, the client's access.
    #[error("the user has not granted access or has revoked it")]
    MissingGrant,
    /// An authorization request refused where no browser waits (a pushed request, RFC 9126):
    /// answered as the token endpoint answers, with the code `/authorize` would redirect with.
    #[error("{description}")]
    AuthorizationRequest {
        failure: crate::authorize::AuthorizeFailure,
        description: String,
    },
    #[error("too many token requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// Too many password checks are waiting already; retry shortly. No password was checked.
    #[error("too many password checks at once")]
    Busy { retry_after_secs: u64 },
    #[error("internal error")]
    Internal,
}

impl EngineError {
    pub fn field(field: Field, message: impl Into<String>) -> EngineError {
        EngineError::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                EngineError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "storage error");
                EngineError::Internal
            }
        }
    }
}
