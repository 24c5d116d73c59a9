//! What a request can fail with in the server: the engine's [`EngineError`], or a failure that
//! only HTTP has (an oversized body, a malformed `Authorization` header, a `grant_type` the
//! dialect does not know). Each dialect maps a [`RequestError`] to its wire format in exactly one
//! place (`partner::error`, `standard::error`).

use axum::http::{HeaderValue, header};
use axum::response::Response;
use tessera_core::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("{0}")]
    AuthorizationHeader(&'static str),
    /// A `grant_type` the dialect does not know (at most 64 characters of it, to echo back).
    #[error("grant_type {0:?} is not supported")]
    UnsupportedGrantType(String),
}

impl RequestError {
    /// A field that failed validation.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> RequestError {
        RequestError::Engine(EngineError::field(field, message))
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

/// Set `Retry-After` (at least one second) when `e` asks the caller to wait.
pub fn set_retry_after(response: &mut Response, e: &RequestError) {
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
}
