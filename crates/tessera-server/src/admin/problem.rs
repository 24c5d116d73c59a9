//! The admin API's one error → wire mapping: RFC 9457 problem details
//! (`application/problem+json`: `type`, `title`, `status`, `detail`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tessera_core::operations::AdminError;

pub use tessera_proto::admin::ProblemBody;

/// Why an admin API call failed.
#[derive(Debug)]
pub enum Problem {
    /// No token, or not a live admin token.
    Unauthenticated,
    /// The token lacks the scope the call needs.
    Forbidden(&'static str),
    /// The body or query could not be read.
    BadRequest(String),
    /// The operation refused its input (or found nothing).
    Admin(AdminError),
    /// An `Idempotency-Key` reused for another request, or one still in flight.
    IdempotencyConflict(&'static str),
    /// The body is over the limit.
    TooLarge(usize),
    /// The route exists, not with this method.
    MethodNotAllowed,
    Unavailable,
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        Problem::Admin(e)
    }
}

impl From<tessera_core::store::StoreError> for Problem {
    fn from(e: tessera_core::store::StoreError) -> Self {
        Problem::Admin(e.into())
    }
}

/// `(status, type slug, title, detail)`.
fn classify(p: &Problem) -> (StatusCode, &'static str, &'static str, String) {
    use AdminError as A;
    match p {
        Problem::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            "send Authorization: Bearer <admin token> (`tessera admin-token create`)".into(),
        ),
        Problem::Forbidden(scope) => (
            StatusCode::FORBIDDEN,
            "insufficient-scope",
            "The token may not do this",
            format!("this call needs an admin token with the {scope} scope"),
        ),
        Problem::BadRequest(why) => (
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request could not be read",
            why.clone(),
        ),
        Problem::IdempotencyConflict(why) => (
            StatusCode::CONFLICT,
            "idempotency-conflict",
            "Idempotency-Key conflict",
            (*why).into(),
        ),
        Problem::TooLarge(n) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The body is too large",
            format!("the request body is larger than {n} bytes"),
        ),
        Problem::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "this route does not take this method; see /admin/v1/openapi.json".into(),
        ),
        Problem::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            "the database did not answer in time; try again".into(),
        ),
        Problem::Admin(e) => match e {
            A::NotFound(_) => (
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                e.to_string(),
            ),
            A::DuplicateEmail(_) | A::DuplicateOrgCode(_) | A::DuplicateUsername(_) => (
                StatusCode::CONFLICT,
                "conflict",
                "Already exists",
                e.to_string(),
            ),
            A::Invalid(_)
            | A::UnknownPartner(_)
            | A::UnknownAccount(_)
            | A::UnknownScopes(_)
            | A::ScopesOutsidePartner(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The input was refused",
                e.to_string(),
            ),
            A::Store(tessera_core::store::StoreError::NotFound(what)) => (
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("no such {what}"),
            ),
            A::Store(tessera_core::store::StoreError::Conflict(what)) => (
                StatusCode::CONFLICT,
                "conflict",
                "Already exists",
                format!("{what} already exists"),
            ),
            A::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Busy",
                e.to_string(),
            ),
            A::Store(_) | A::Keys(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Temporarily unavailable",
                "the operation could not complete; try again".into(),
            ),
        },
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let (status, slug, title, detail) = classify(&self);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(problem = ?self, "admin API call failed");
        }
        crate::metrics::error("admin", slug);
        let body = ProblemBody {
            kind: format!("urn:tessera:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
        };
        let mut r = (status, axum::Json(body)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tessera-admin\""),
            );
        }
        r
    }
}
