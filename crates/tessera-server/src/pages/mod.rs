//! Tessera's own pages for the authorization-code flow: `/authorize` in both dialects, sign-in,
//! registration, consent, the user's connected applications, sign-out, and the development
//! callback. Server-rendered HTML, no JavaScript; every form carries a CSRF token; the session
//! cookie is renewed at each sign-in.
//!
//! By page: `authorize` answers `/authorize` in both dialects and serves the development
//! callback, `login` signs in, registers and signs out, `consent` asks for consent and lists
//! and withdraws the user's grants; this file holds the routes and what the pages share (the
//! flow's next step, sessions, checked forms, error pages). [`view`] renders templates and sets
//! the security headers, cookies and CSRF tokens.

mod authorize;
mod consent;
mod login;
pub mod view;

pub use authorize::DEBUG_CALLBACK_PATH;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;
use tessera_core::EngineError;
use tessera_core::authorize::{Approved, AuthorizeError, AuthorizeFailure, SignedIn};
use tessera_core::model::{AuthorizationRequest, Client, Grant, User};
use tessera_core::policy::{AUTHORIZATION_REQUEST_TTL, SESSION_TTL};

use crate::app::AppState;
use crate::body::{RawBody, bytes};
use crate::standard::form::Form;
use view::{Framing, Page, SESSION_COOKIE, csrf_ok, redirect, set_cookie};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/oauth/authorize", get(authorize::partner))
        .route("/oauth/authorize", get(authorize::standard))
        .route("/oauth/login", get(login::login_page).post(login::login))
        .route(
            "/oauth/register",
            get(login::register_page).post(login::register),
        )
        .route(
            "/oauth/consent",
            get(consent::consent_page).post(consent::consent),
        )
        .route("/oauth/grants", get(consent::grants_page))
        .route("/oauth/grants/revoke", post(consent::revoke_grant))
        .route("/oauth/logout", post(login::logout))
        .route(DEBUG_CALLBACK_PATH, get(authorize::debug_callback))
        .route("/assets/tessera.css", get(stylesheet))
}

/// Which dialect's `/authorize` began a flow: it decides the error codes a failure redirect
/// carries, then and on every later page. Stored with the pending request as [`Dialect::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dialect {
    Partner,
    Standard,
}

impl Dialect {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Dialect::Partner => "partner",
            Dialect::Standard => "standard",
        }
    }

    pub(super) fn parse(s: &str) -> Dialect {
        if s == "partner" {
            Dialect::Partner
        } else {
            Dialect::Standard
        }
    }

    /// The `error` code of a failure redirect in this dialect.
    pub(super) fn error_code(
        self,
        failure: tessera_core::authorize::AuthorizeFailure,
    ) -> &'static str {
        match self {
            Dialect::Partner => crate::partner::error::authorize_error(failure),
            Dialect::Standard => crate::standard::error::authorize_error(failure),
        }
    }
}

/// `uri` with `params` added to its query (RFC 6749 §4.1.2: keep the registered query).
fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        sep = '&';
        out.push_str(&form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>());
        out.push('=');
        out.push_str(&form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
    }
    out
}

/// Where an authorization error sends the browser back to the client (RFC 6749 §4.1.2.1, with
/// RFC 9207's `iss`), `error` in the words of the dialect the flow began in.
pub(super) fn error_redirect(
    app: &AppState,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> String {
    let description = crate::wire::error_description(description);
    let mut params = vec![
        ("error", error),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", app.engine.config().issuer.as_str()));
    with_query(redirect_uri, &params)
}

/// Where an approval sends the browser: the client's redirect URI with the code, the request's
/// `state` and RFC 9207's `iss`.
fn code_redirect(app: &AppState, approved: &Approved) -> String {
    let mut params = vec![("code", approved.code.expose())];
    if let Some(state) = &approved.state {
        params.push(("state", state.as_str()));
    }
    params.push(("iss", app.engine.config().issuer.as_str()));
    with_query(&approved.redirect_uri, &params)
}

/// A message for a page: capitalised, ending with a full stop.
pub(super) fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let mut out = match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

pub(super) fn secure(app: &AppState) -> bool {
    app.engine.config().issuer.starts_with("https://")
}

pub(super) fn error_page(message: &str, status: StatusCode) -> Response {
    Page::render(
        "message.html",
        context! { heading => "This request cannot continue", message },
        Framing::Nobody,
    )
    .status(status)
    .into_response()
}

async fn stylesheet() -> Response {
    let mut r = view::STYLESHEET.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

/// The browser's sign-in, if its session belongs to the client's partner and is recent enough
/// for the request (`prompt=login`, `max_age`).
pub(super) async fn signed_in(
    app: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    client: &Client,
    now: i64,
) -> Option<SignedIn> {
    let cookie = view::cookie(headers, SESSION_COOKIE, secure(app))?;
    let s = app.engine.signed_in(cookie, now).await.ok()??;
    (s.user.partner_id == client.partner_id && s.satisfies(request)).then_some(s)
}

/// After `/authorize`: sign in first, unless the browser's session already belongs to the
/// client's partner (and is recent enough, and is the user an `id_token_hint` names: see
/// `SignedIn::satisfies`, which every later page checks again). The
/// flow cookie binds the pending request to this
/// browser: every later page of the flow refuses a browser without it. With `prompt=none`
/// nothing is shown: the client gets the code, or `login_required` / `consent_required`.
pub(super) async fn continue_flow(
    app: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    client: &Client,
    now: i64,
) -> Response {
    let user = signed_in(app, headers, request, client, now).await;
    if request.prompts("none") {
        let Some(user) = user else {
            return end_flow_with_error(
                app,
                request,
                client,
                AuthorizeFailure::LoginRequired,
                "the user is not signed in (prompt=none)",
                Vec::new(),
            )
            .await;
        };
        return match app.engine.covering_grant(request, &user.user).await {
            Ok(Some(grant)) => {
                approve(app, request, client, &user, Some(&grant), now, Vec::new()).await
            }
            Ok(None) => {
                end_flow_with_error(
                    app,
                    request,
                    client,
                    AuthorizeFailure::ConsentRequired,
                    "the user has not consented to these scopes (prompt=none)",
                    Vec::new(),
                )
                .await
            }
            Err(e) => failure_page(&e),
        };
    }
    let bind = view::flow_cookie(
        &app.engine,
        &request.id,
        AUTHORIZATION_REQUEST_TTL,
        secure(app),
    );
    let Some(user) = user else {
        return redirect(
            &format!("/oauth/login?request={}", request.id),
            vec![bind],
            &client.frame_origins,
        );
    };
    finish_or_consent(app, request, client, &user, now, Vec::new(), Some(bind)).await
}

/// End the pending request and send the browser back to the client with an error, in the
/// words of the dialect the flow began in.
pub(super) async fn end_flow_with_error(
    app: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
    failure: AuthorizeFailure,
    description: &str,
    mut cookies: Vec<String>,
) -> Response {
    if let Err(e) = app.engine.consume_authorization(request).await {
        return failure_page(&e);
    }
    let code = Dialect::parse(&request.dialect).error_code(failure);
    let to = error_redirect(
        app,
        &request.redirect_uri,
        request.state.as_deref(),
        code,
        description,
    );
    cookies.push(view::end_flow_cookie(&request.id, secure(app)));
    redirect(&to, cookies, &client.frame_origins)
}

/// Approve the request for the signed-in user (under `covering`, the grant already given, or
/// by recording one: see `Engine::approve`) and send the browser back with the code.
async fn approve(
    app: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
    user: &SignedIn,
    covering: Option<&Grant>,
    now: i64,
    mut cookies: Vec<String>,
) -> Response {
    match app.engine.approve(request, user, covering, now).await {
        Ok(approved) => {
            cookies.push(view::end_flow_cookie(&request.id, secure(app)));
            redirect(
                &code_redirect(app, &approved),
                cookies,
                &client.frame_origins,
            )
        }
        Err(e) => failure_page(&e),
    }
}

/// Approve at once if the user's grant covers the request, else send the browser to consent.
/// `bind`, the cookie that binds the request to this browser, is set only when a page follows:
/// a flow that ends here leaves nothing behind that counts as an unfinished sign-in.
pub(super) async fn finish_or_consent(
    app: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
    user: &SignedIn,
    now: i64,
    mut cookies: Vec<String>,
    bind: Option<String>,
) -> Response {
    match app.engine.covering_grant(request, &user.user).await {
        Ok(Some(grant)) => approve(app, request, client, user, Some(&grant), now, cookies).await,
        Ok(None) => {
            cookies.extend(bind);
            redirect(
                &format!("/oauth/consent?request={}", request.id),
                cookies,
                &client.frame_origins,
            )
        }
        Err(e) => failure_page(&e),
    }
}

/// Start a fresh session for `user` (a new cookie at every sign-in) and continue the flow.
pub(super) async fn sign_in(
    app: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
    user: &User,
    now: i64,
) -> Response {
    let (session, signed_in) = match app.engine.create_session(user, now).await {
        Ok(s) => s,
        Err(e) => return failure_page(&e),
    };
    let cookie = set_cookie(SESSION_COOKIE, session.expose(), SESSION_TTL, secure(app));
    if !signed_in.is_hinted(request) {
        // OpenID Connect Core §3.1.2.1: the application asked for the user its id_token_hint
        // names, and someone else signed in. They stay signed in; the request ends.
        return end_flow_with_error(
            app,
            request,
            client,
            AuthorizeFailure::LoginRequired,
            "the account that signed in is not the one id_token_hint names",
            vec![cookie],
        )
        .await;
    }
    let mut request = request.clone();
    if let Err(e) = app
        .engine
        .note_request_login(&mut request, &signed_in)
        .await
    {
        return failure_page(&e);
    }
    finish_or_consent(app, &request, client, &signed_in, now, vec![cookie], None).await
}

pub(super) fn failure_page(e: &EngineError) -> Response {
    if let EngineError::InvalidGrant(why) = e {
        // A refusal the user can act on (a replayed or spent request), not a fault of ours.
        return error_page(&sentence(why), StatusCode::BAD_REQUEST);
    }
    tracing::warn!(error = %e, "authorization page failed");
    error_page(
        "Something went wrong on our side. Go back to the application and try again.",
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

#[derive(Deserialize)]
pub(super) struct RequestQuery {
    pub(super) request: Option<String>,
}

/// The pending request a page names, if this browser began it.
pub(super) async fn pending(
    app: &AppState,
    headers: &HeaderMap,
    id: Option<&str>,
    now: i64,
) -> Result<(AuthorizationRequest, Arc<Client>), Response> {
    let id = id.ok_or_else(|| {
        error_page(
            "This page needs a sign-in request.",
            StatusCode::BAD_REQUEST,
        )
    })?;
    let (request, client) =
        app.engine
            .pending_authorization(id, now)
            .await
            .map_err(|e| match e {
                AuthorizeError::Page(m) => error_page(&m, StatusCode::BAD_REQUEST),
                AuthorizeError::Redirect { .. } => {
                    error_page("Invalid request.", StatusCode::BAD_REQUEST)
                }
            })?;
    if !view::flow_ok(&app.engine, headers, id, secure(app)) {
        // Shown where the client's pages may be shown (its frame origins), saying nothing more.
        return Err(Page::render(
            "message.html",
            context! { heading => "This request cannot continue",
            message => "This sign-in request was started in another browser. Go back to the \
                        application and start again." },
            Framing::Client(&client),
        )
        .status(StatusCode::BAD_REQUEST)
        .into_response());
    }
    Ok((request, client))
}

/// A posted form whose CSRF token is this browser's.
pub(super) fn checked_form(
    app: &AppState,
    headers: &HeaderMap,
    body: &RawBody,
) -> Result<Form, Box<Response>> {
    let form = bytes(body)
        .and_then(|b| Form::parse(headers, b))
        .map_err(|_| {
            Box::new(error_page(
                "The form could not be read.",
                StatusCode::BAD_REQUEST,
            ))
        })?;
    if !csrf_ok(&app.engine, headers, secure(app), form.get("csrf")) {
        return Err(Box::new(error_page(
            "This form has expired. Go back and try again.",
            StatusCode::FORBIDDEN,
        )));
    }
    Ok(form)
}

/// A checked form of the flow, with the pending request it names and that request's client.
pub(super) async fn flow_form(
    app: &AppState,
    headers: &HeaderMap,
    body: &RawBody,
    now: i64,
) -> Result<(Form, AuthorizationRequest, Arc<Client>), Box<Response>> {
    let form = checked_form(app, headers, body)?;
    let (request, client) = pending(app, headers, form.get("request"), now)
        .await
        .map_err(Box::new)?;
    Ok((form, request, client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_registered_query_and_encode_values() {
        assert_eq!(
            with_query(
                "https://a.example/cb?x=1",
                &[("code", "c d"), ("state", "s&t")]
            ),
            "https://a.example/cb?x=1&code=c+d&state=s%26t"
        );
        assert_eq!(
            with_query("https://a.example/cb", &[("k", "v")]),
            "https://a.example/cb?k=v"
        );
    }

    #[test]
    fn sentences_are_capitalised_and_stopped_once() {
        assert_eq!(
            sentence("the password is too weak"),
            "The password is too weak."
        );
        assert_eq!(
            sentence("Enter a valid email address."),
            "Enter a valid email address."
        );
        assert_eq!(sentence(""), "");
    }
}
