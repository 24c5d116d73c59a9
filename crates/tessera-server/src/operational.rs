//! Operational endpoints: liveness, readiness, and the public keys.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/.well-known/jwks.json", get(jwks))
}

/// The process is up.
async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// The process can serve: it is not draining for a shutdown, and the database answers within
/// 2 s.
async fn readyz(State(app): State<AppState>) -> Response {
    if app.draining.is_on() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "reason": "shutting down"})),
        )
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(2), app.engine.ping()).await {
        Ok(Ok(())) => axum::Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "reason": "database error"})),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "reason": "database timeout"})),
        )
            .into_response(),
    }
}

/// RFC 7517 key set; cacheable for a minute, so a rotated key is seen soon.
#[utoipa::path(get, operation_id = "jwks", path = "/.well-known/jwks.json", tag = "openid",
    responses((status = 200, description = "The published signing keys (RFC 7517)", body = Object)))]
pub(crate) async fn jwks(State(app): State<AppState>) -> Response {
    let mut r = axum::Json(app.engine.jwks()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    r
}
