//! For axum resource servers (feature `axum`): a middleware that verifies the bearer token of
//! every request with a [`Verifier`] and puts its [`AccessClaims`] in the request, and the
//! extractor that takes them out.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use tessera_client::{AccessClaims, Verifier, axum::{Guard, require_token}};
//!
//! async fn contacts(claims: AccessClaims) -> String {
//!     format!("contacts of account {:?}", claims.account_id)
//! }
//!
//! let verifier = Arc::new(Verifier::new("https://auth.example.com"));
//! let app: Router = Router::new()
//!     .route("/contacts", get(contacts))
//!     .layer(axum::middleware::from_fn_with_state(
//!         Guard::new(verifier).scopes(["crm"]),
//!         require_token,
//!     ));
//! # let _ = app;
//! ```

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::verifier::{AccessClaims, Verifier, VerifyError};

/// What [`require_token`] checks: a verifier and the scopes every request needs.
#[derive(Clone, Debug)]
pub struct Guard {
    verifier: Arc<Verifier>,
    scopes: Arc<[String]>,
}

impl Guard {
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Guard {
            verifier,
            scopes: Arc::new([]),
        }
    }

    /// Scopes every request's token must carry.
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

/// The middleware: `401`/`403` with an RFC 6750 `WWW-Authenticate` for a missing, invalid or
/// under-scoped token (`503` when the issuer cannot be reached); otherwise the request goes on
/// with its [`AccessClaims`] as an extension.
pub async fn require_token(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && !t.is_empty())
        .map(|(_, t)| t.trim().to_string());
    let Some(token) = token else {
        return refuse(&VerifyError::Missing);
    };
    let scopes: Vec<&str> = guard.scopes.iter().map(String::as_str).collect();
    match guard.verifier.verify_scopes(&token, &scopes).await {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(e) => refuse(&e),
    }
}

/// RFC 6750 §3's answer to a refused token.
pub fn refuse(e: &VerifyError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut challenge = String::from("Bearer realm=\"tessera\"");
    if let Some(code) = e.code() {
        challenge.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            e.to_string().replace(['"', '\\'], "'")
        ));
    }
    if let VerifyError::InsufficientScope(scopes) = e {
        challenge.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
    }
    let body = serde_json::json!({
        "error": e.code().unwrap_or("invalid_request"),
        "error_description": e.to_string(),
    });
    let mut r = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The verified claims, in a handler behind [`require_token`] (a `401` where the middleware is
/// missing, so a forgotten layer fails closed).
impl<S: Send + Sync> FromRequestParts<S> for AccessClaims {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AccessClaims>()
            .cloned()
            .ok_or_else(|| refuse(&VerifyError::Missing))
    }
}
