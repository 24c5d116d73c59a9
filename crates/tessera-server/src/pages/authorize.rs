//! `/authorize` in both dialects (RFC 6749 §4.1.1): parse the query, let the engine validate and
//! keep the request, and continue to sign-in or consent; and the development callback page that
//! `--dev` clients may redirect to.

use axum::extract::{ConnectInfo, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use tessera_core::authorize::{AuthorizeError, AuthorizeParams};
use tessera_core::{EngineError, unix_now};

use super::view::{self, Framing, Page, redirect};
use super::{Dialect, continue_flow, error_page};
use crate::app::{AppState, Peer};

/// Path of the development callback page (`client create --dev`).
pub const DEBUG_CALLBACK_PATH: &str = "/oauth/debug-callback";

/// Parse the query by hand so that a repeated parameter is refused (RFC 6749 §3.1).
fn authorize_params(raw: Option<&str>) -> Result<AuthorizeParams, String> {
    let mut p = AuthorizeParams::default();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(format!("The request repeats the parameter {k}."));
        }
        // PostgreSQL refuses NUL in text (the request is stored), and no parameter has one.
        if k.contains('\0') || v.contains('\0') {
            return Err(format!(
                "The request's parameter {} holds a NUL character (%00).",
                k.replace('\0', "%00")
            ));
        }
        p.set(&k, v.into_owned());
    }
    Ok(p)
}

pub(super) async fn partner(
    state: State<AppState>,
    peer: ConnectInfo<Peer>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    authorize(state, peer, headers, q, Dialect::Partner).await
}

pub(super) async fn standard(
    state: State<AppState>,
    peer: ConnectInfo<Peer>,
    headers: HeaderMap,
    q: RawQuery,
) -> Response {
    authorize(state, peer, headers, q, Dialect::Standard).await
}

/// Pending requests one browser may hold at once (each has its flow cookie).
const MAX_FLOWS_PER_BROWSER: usize = 8;

/// RFC 6749 §4.1.1.
async fn authorize(
    State(app): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    dialect: Dialect,
) -> Response {
    let now = unix_now();
    // Each request stores a pending request: bounded per requester and per browser.
    if let Err(EngineError::RateLimited { retry_after_secs }) =
        app.engine.check_flow_rate(&Peer(peer).requester()).await
    {
        return error_page(
            &format!(
                "Too many sign-in requests from here. Try again in {retry_after_secs} seconds."
            ),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    if view::flow_cookies(&headers) >= MAX_FLOWS_PER_BROWSER {
        return error_page(
            "Too many sign-ins are in progress in this browser. Finish or close one, then try again.",
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let params = match authorize_params(query.as_deref()) {
        Ok(p) => p,
        Err(m) => return error_page(&m, StatusCode::BAD_REQUEST),
    };
    let (request, client) = match app
        .engine
        .begin_authorization(params, dialect.as_str(), now)
        .await
    {
        Ok(begun) => begun,
        Err(e) => return authorize_error(&app, e, dialect),
    };
    continue_flow(&app, &headers, &request, &client, now).await
}

fn authorize_error(app: &AppState, e: AuthorizeError, dialect: Dialect) -> Response {
    match e {
        AuthorizeError::Page(message) => error_page(&message, StatusCode::BAD_REQUEST),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            failure,
            description,
        } => {
            let code = dialect.error_code(failure);
            let to =
                super::error_redirect(app, &redirect_uri, state.as_deref(), code, &description);
            redirect(&to, Vec::new(), &[])
        }
    }
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The development callback: shows the code (or the error) so a partner can test the flow
/// before registering a redirect URI. Only `--dev` clients may be sent here (checked at
/// `/authorize`); the page itself only displays its query.
pub(super) async fn debug_callback(Query(q): Query<CallbackQuery>) -> Response {
    Page::render(
        "debug_callback.html",
        context! { code => q.code, state => q.state, iss => q.iss, error => q.error,
        error_description => q.error_description },
        Framing::Nobody,
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_authorize_parameters_are_refused() {
        assert!(authorize_params(Some("client_id=a&client_id=b")).is_err());
        let p = authorize_params(Some("client_id=a&scope=x+y&other=1")).unwrap();
        assert_eq!(p.scope.as_deref(), Some("x y"));
    }
}
