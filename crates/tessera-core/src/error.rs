//! The engine's one error type, [`EngineError`]: what grants, sign-in, sign-up, sessions and
//! the other engine operations refuse with. Each variant is a distinct outcome that each dialect
//! maps to its own wire code in exactly one function (`tessera-server`'s `partner::error` and
//! `standard::error`); HTTP-only failures (body size, a malformed header, an unknown
//! `grant_type`) are the server's own. Messages are written for the partner who will read them;
//! internal detail (database errors) goes to the log, never to the wire.

use crate::jwt::JwtError;
use crate::store::StoreError;

/// A field that failed validation: its JSON path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
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
    #[error("the client may not use {0}")]
    UnauthorizedClient(&'static str),
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
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> EngineError {
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
