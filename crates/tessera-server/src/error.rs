//! What a request can fail with in the server: the engine's [`EngineError`], or a failure that
//! only HTTP has (an oversized body, a malformed `Authorization` header, a `grant_type` the
//! dialect does not know). Each dialect maps a [`RequestError`] to its wire format in exactly one
//! place (`partner::error`, `standard::error`).

use axum::http::{HeaderValue, header};
use axum::response::Response;
use tessera_core::{EngineError, Field};

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Fields the server's own parsing refused (a missing member, a wrong type, an empty
    /// value), named as the request names them.
    #[error("the request is invalid")]
    Invalid(Vec<Invalid>),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("{0}")]
    AuthorizationHeader(&'static str),
    /// A `grant_type` the dialect does not know (at most 64 characters of it, to echo back).
    #[error("grant_type {0:?} is not supported")]
    UnsupportedGrantType(String),
}

/// A refused field of the request, under the name the request gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl RequestError {
    /// A field, as the request names it, that failed validation.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> RequestError {
        RequestError::Invalid(vec![Invalid {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// The refused fields, when that is the refusal: the engine's named by the dialect's
    /// `wire_name`, the server's own as they are.
    pub fn invalid_fields(&self, wire_name: fn(Field) -> &'static str) -> Option<Vec<Invalid>> {
        match self {
            RequestError::Invalid(fields) => Some(fields.clone()),
            RequestError::Engine(EngineError::Validation(fields)) => Some(
                fields
                    .iter()
                    .map(|f| Invalid {
                        field: wire_name(f.field).to_string(),
                        message: f.message.clone(),
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Seconds the caller should wait, when the refusal is a rate limit or a lockout.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            RequestError::Engine(
                EngineError::RateLimited { retry_after_secs }
                | EngineError::Locked { retry_after_secs }
                | EngineError::Busy { retry_after_secs },
            ) => Some(*retry_after_secs),
            _ => None,
        }
    }
}

/// The status of an authorization request refused where no browser waits (a push): 503 when
/// the server could not look something up, 400 otherwise. Both dialects answer with it.
pub fn authorization_request_status(
    failure: tessera_core::authorize::AuthorizeFailure,
) -> axum::http::StatusCode {
    match failure {
        tessera_core::authorize::AuthorizeFailure::ServerError => {
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        }
        _ => axum::http::StatusCode::BAD_REQUEST,
    }
}

/// Set `Retry-After` (at least one second) when `e` asks the caller to wait.
pub fn set_retry_after(response: &mut Response, e: &RequestError) {
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
}
