//! Tessera's own pages for the authorization-code flow: `/authorize` in both dialects, sign-in,
//! registration, consent, the user's connected applications, sign-out, and the development
//! callback. Server-rendered HTML, no JavaScript; every form carries a CSRF token; the session
//! cookie is renewed at each sign-in.

pub mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;
use tessera_core::authorize::{AuthorizeError, AuthorizeParams, DEBUG_CALLBACK_PATH, Dialect};
use tessera_core::model::{AuthorizationRequest, Client, User};
use tessera_core::policy::SESSION_TTL;
use tessera_core::{GrantError, unix_now};

use crate::AppState;
use crate::body::{RawBody, bytes};
use crate::standard::form::Form;
use view::{CSRF_COOKIE, Framing, Page, SESSION_COOKIE, csrf_ok, csrf_token, redirect, set_cookie};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/oauth/authorize", get(authorize_partner))
        .route("/oauth/authorize", get(authorize_standard))
        .route("/oauth/login", get(login_page).post(login))
        .route("/oauth/register", get(register_page).post(register))
        .route("/oauth/consent", get(consent_page).post(consent))
        .route("/oauth/grants", get(grants_page))
        .route("/oauth/grants/revoke", post(revoke_grant))
        .route("/oauth/logout", post(logout))
        .route(DEBUG_CALLBACK_PATH, get(debug_callback))
        .route("/assets/tessera.css", get(stylesheet))
}

fn secure(app: &AppState) -> bool {
    app.engine.config().issuer.starts_with("https://")
}

fn error_page(message: &str, status: StatusCode) -> Response {
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

/// Parse the query by hand so that a repeated parameter is refused (RFC 6749 §3.1).
fn authorize_params(raw: Option<&str>) -> Result<AuthorizeParams, String> {
    let mut p = AuthorizeParams::default();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(format!("The request repeats the parameter {k}."));
        }
        let v = Some(v.into_owned());
        match k.as_ref() {
            "response_type" => p.response_type = v,
            "client_id" => p.client_id = v,
            "redirect_uri" => p.redirect_uri = v,
            "scope" => p.scope = v,
            "state" => p.state = v,
            "code_challenge" => p.code_challenge = v,
            "code_challenge_method" => p.code_challenge_method = v,
            _ => {}
        }
    }
    Ok(p)
}

async fn authorize_partner(state: State<AppState>, headers: HeaderMap, q: RawQuery) -> Response {
    authorize(state, headers, q, Dialect::Partner).await
}

async fn authorize_standard(state: State<AppState>, headers: HeaderMap, q: RawQuery) -> Response {
    authorize(state, headers, q, Dialect::Standard).await
}

/// RFC 6749 §4.1.1.
async fn authorize(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    dialect: Dialect,
) -> Response {
    let now = unix_now();
    let params = match authorize_params(query.as_deref()) {
        Ok(p) => p,
        Err(m) => return error_page(&m, StatusCode::BAD_REQUEST),
    };
    match app.engine.begin_authorization(params, dialect, now).await {
        Ok((request, client)) => continue_flow(&app, &headers, &request, &client, now).await,
        Err(e) => authorize_error(&app, e, dialect),
    }
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
            let code = match dialect {
                Dialect::Partner => crate::partner::error::authorize_error(failure),
                Dialect::Standard => crate::standard::error::authorize_error(failure),
            };
            let to = app
                .engine
                .error_redirect(&redirect_uri, state.as_deref(), code, &description);
            redirect(&to, Vec::new(), &[])
        }
    }
}

/// The signed-in user, if the session belongs to the client's partner.
async fn session_user(
    app: &AppState,
    headers: &HeaderMap,
    client: &Client,
    now: i64,
) -> Option<User> {
    let cookie = view::cookie(headers, SESSION_COOKIE)?;
    let user = app.engine.session_user(cookie, now).await.ok()??;
    (user.partner_id == client.partner_id).then_some(user)
}

/// After `/authorize`: sign in first, unless the browser's session already belongs to the
/// client's partner.
async fn continue_flow(
    app: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    client: &Client,
    now: i64,
) -> Response {
    let Some(user) = session_user(app, headers, client, now).await else {
        return redirect(
            &format!("/oauth/login?request={}", request.id),
            Vec::new(),
            &client.frame_origins,
        );
    };
    finish_or_consent(app, request, client, &user, now, Vec::new()).await
}

async fn finish_or_consent(
    app: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
    user: &User,
    now: i64,
    cookies: Vec<String>,
) -> Response {
    match app.engine.consent_needed(request, user).await {
        Ok(false) => match app.engine.approve(request, user, now).await {
            Ok(to) => redirect(&to, cookies, &client.frame_origins),
            Err(e) => failure_page(&e),
        },
        Ok(true) => redirect(
            &format!("/oauth/consent?request={}", request.id),
            cookies,
            &client.frame_origins,
        ),
        Err(e) => failure_page(&e),
    }
}

/// Start a fresh session for `user` (a new cookie at every sign-in) and continue the flow.
async fn sign_in(
    app: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
    user: &User,
    now: i64,
) -> Response {
    match app.engine.create_session(user, now).await {
        Ok(session) => {
            let cookie = set_cookie(SESSION_COOKIE, session.expose(), SESSION_TTL, secure(app));
            finish_or_consent(app, request, client, user, now, vec![cookie]).await
        }
        Err(e) => failure_page(&e),
    }
}

fn failure_page(e: &GrantError) -> Response {
    tracing::warn!(error = %e, "authorization page failed");
    error_page(
        "Something went wrong on our side. Go back to the application and try again.",
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

#[derive(Deserialize)]
struct RequestQuery {
    request: Option<String>,
}

async fn pending(
    app: &AppState,
    id: Option<&str>,
    now: i64,
) -> Result<(AuthorizationRequest, Arc<Client>), Response> {
    let id = id.ok_or_else(|| {
        error_page(
            "This page needs a sign-in request.",
            StatusCode::BAD_REQUEST,
        )
    })?;
    app.engine
        .pending_authorization(id, now)
        .await
        .map_err(|e| match e {
            AuthorizeError::Page(m) => error_page(&m, StatusCode::BAD_REQUEST),
            AuthorizeError::Redirect { .. } => {
                error_page("Invalid request.", StatusCode::BAD_REQUEST)
            }
        })
}

/// A posted form whose CSRF token matches the browser's cookie.
fn checked_form(headers: &HeaderMap, body: &RawBody) -> Result<Form, Box<Response>> {
    let form = bytes(body)
        .and_then(|b| Form::parse(headers, b))
        .map_err(|_| {
            Box::new(error_page(
                "The form could not be read.",
                StatusCode::BAD_REQUEST,
            ))
        })?;
    if !csrf_ok(headers, form.get("csrf")) {
        return Err(Box::new(error_page(
            "This form has expired. Go back and try again.",
            StatusCode::FORBIDDEN,
        )));
    }
    Ok(form)
}

/// A checked form of the flow, with the pending request it names and that request's client.
async fn flow_form(
    app: &AppState,
    headers: &HeaderMap,
    body: &RawBody,
    now: i64,
) -> Result<(Form, AuthorizationRequest, Arc<Client>), Box<Response>> {
    let form = checked_form(headers, body)?;
    let (request, client) = pending(app, form.get("request"), now)
        .await
        .map_err(Box::new)?;
    Ok((form, request, client))
}

fn login_view(
    app: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    client: &Client,
    username: &str,
    error: &str,
) -> Page {
    let (csrf, set) = csrf_token(headers, secure(app));
    let page = Page::render(
        "login.html",
        context! { app => client.name.as_str(), request => request.id.as_str(), csrf, username, error },
        Framing::Client(client),
    );
    match set {
        Some(c) => page.cookie(c),
        None => page,
    }
}

async fn login_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RequestQuery>,
) -> Response {
    let now = unix_now();
    match pending(&app, q.request.as_deref(), now).await {
        Ok((request, client)) => {
            login_view(&app, &headers, &request, &client, "", "").into_response()
        }
        Err(r) => r,
    }
}

async fn login(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let (mut form, request, client) = match flow_form(&app, &headers, &body, now).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let username = form.take("username").unwrap_or_default();
    let password = zeroize::Zeroizing::new(form.take("password").unwrap_or_default());
    match app
        .engine
        .page_login(&client, &username, &password, now)
        .await
    {
        Ok(user) => sign_in(&app, &request, &client, &user, now).await,
        Err(e) => {
            let message = match e {
                GrantError::Locked { retry_after_secs } => {
                    format!("Too many failed attempts. Try again in {retry_after_secs} seconds.")
                }
                GrantError::InvalidGrant(why) => tessera_core::authorize::sentence(why),
                GrantError::Unavailable | GrantError::Internal => return failure_page(&e),
                _ => "The email or password is not right.".into(),
            };
            login_view(&app, &headers, &request, &client, &username, &message)
                .status(StatusCode::UNAUTHORIZED)
                .into_response()
        }
    }
}

fn register_view(
    app: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    client: &Client,
    fields: (&str, &str),
    errors: Vec<String>,
) -> Page {
    let (csrf, set) = csrf_token(headers, secure(app));
    let page = Page::render(
        "register.html",
        context! { app => client.name.as_str(), request => request.id.as_str(), csrf,
        account_name => fields.0, email => fields.1, errors },
        Framing::Client(client),
    );
    match set {
        Some(c) => page.cookie(c),
        None => page,
    }
}

async fn register_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RequestQuery>,
) -> Response {
    let now = unix_now();
    match pending(&app, q.request.as_deref(), now).await {
        Ok((request, client)) => {
            register_view(&app, &headers, &request, &client, ("", ""), Vec::new()).into_response()
        }
        Err(r) => r,
    }
}

async fn register(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let (mut form, request, client) = match flow_form(&app, &headers, &body, now).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let name = form.take("account_name").unwrap_or_default();
    let email = form.take("email").unwrap_or_default();
    let password = zeroize::Zeroizing::new(form.take("password").unwrap_or_default());
    match app
        .engine
        .register_account(&client, &name, &email, &password, now)
        .await
    {
        Ok(user) => sign_in(&app, &request, &client, &user, now).await,
        Err(GrantError::Validation(fields)) => {
            let errors = fields.into_iter().map(|f| f.message).collect();
            register_view(&app, &headers, &request, &client, (&name, &email), errors)
                .status(StatusCode::BAD_REQUEST)
                .into_response()
        }
        Err(e) => failure_page(&e),
    }
}

async fn consent_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RequestQuery>,
) -> Response {
    let now = unix_now();
    let (request, client) = match pending(&app, q.request.as_deref(), now).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(user) = session_user(&app, &headers, &client, now).await else {
        return redirect(
            &format!("/oauth/login?request={}", request.id),
            Vec::new(),
            &client.frame_origins,
        );
    };
    let view = match app.engine.consent_view(&request, &client).await {
        Ok(v) => v,
        Err(e) => return failure_page(&e),
    };
    let (csrf, set) = csrf_token(&headers, secure(&app));
    let page = Page::render(
        "consent.html",
        context! { app => view.client_name, scopes => view.scopes, request => request.id.as_str(),
        csrf, user => user.username.as_str() },
        Framing::Client(&client),
    );
    match set {
        Some(c) => page.cookie(c),
        None => page,
    }
    .into_response()
}

async fn consent(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let (mut form, request, client) = match flow_form(&app, &headers, &body, now).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let Some(user) = session_user(&app, &headers, &client, now).await else {
        return redirect(
            &format!("/oauth/login?request={}", request.id),
            Vec::new(),
            &client.frame_origins,
        );
    };
    match form.take("decision").as_deref() {
        Some("approve") => match app.engine.approve(&request, &user, now).await {
            Ok(to) => redirect(&to, Vec::new(), &client.frame_origins),
            Err(e) => failure_page(&e),
        },
        _ => {
            let dialect = Dialect::parse(&request.dialect);
            let failure = tessera_core::authorize::AuthorizeFailure::AccessDenied;
            let code = match dialect {
                Dialect::Partner => crate::partner::error::authorize_error(failure),
                Dialect::Standard => crate::standard::error::authorize_error(failure),
            };
            let to = app.engine.error_redirect(
                &request.redirect_uri,
                request.state.as_deref(),
                code,
                "the user denied the request",
            );
            redirect(&to, Vec::new(), &client.frame_origins)
        }
    }
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn grants_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let now = unix_now();
    let user = match view::cookie(&headers, SESSION_COOKIE) {
        Some(c) => app.engine.session_user(c, now).await.ok().flatten(),
        None => None,
    };
    let Some(user) = user else {
        return Page::render(
            "message.html",
            context! { heading => "You are not signed in",
                       message => "Sign in through an application that uses Tessera, then come back here to see and remove the applications connected to your account." },
            Framing::Nobody,
        )
        .status(StatusCode::UNAUTHORIZED)
        .into_response();
    };
    let grants = match app.engine.user_grants(&user).await {
        Ok(g) => g,
        Err(e) => return failure_page(&e),
    };
    let rows: Vec<minijinja::Value> = grants
        .into_iter()
        .map(|(g, name)| {
            context! { name, client_id => g.client_id, scope => g.scope.replace(' ', ", "),
            since => date(g.created_at) }
        })
        .collect();
    let notice = match q.notice.as_deref() {
        Some("revoked") => "Access removed. The application can no longer act for you.",
        _ => "",
    };
    let (csrf, set) = csrf_token(&headers, secure(&app));
    let page = Page::render(
        "grants.html",
        context! { user => user.username.as_str(),
        grants => rows, csrf, notice },
        Framing::Nobody,
    );
    match set {
        Some(c) => page.cookie(c),
        None => page,
    }
    .into_response()
}

/// `YYYY-MM-DD` of a unix time (UTC), without a date crate.
fn date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

async fn revoke_grant(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    let now = unix_now();
    let mut form = match checked_form(&headers, &body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let user = match view::cookie(&headers, SESSION_COOKIE) {
        Some(c) => app.engine.session_user(c, now).await.ok().flatten(),
        None => None,
    };
    let (Some(user), Some(client_id)) = (user, form.take("client_id")) else {
        return redirect("/oauth/grants", Vec::new(), &[]);
    };
    match app.engine.revoke_user_grant(&user, &client_id, now).await {
        Ok(_) => redirect("/oauth/grants?notice=revoked", Vec::new(), &[]),
        Err(e) => failure_page(&e),
    }
}

async fn logout(State(app): State<AppState>, headers: HeaderMap, body: RawBody) -> Response {
    if let Err(r) = checked_form(&headers, &body) {
        return *r;
    }
    if let Some(c) = view::cookie(&headers, SESSION_COOKIE)
        && let Err(e) = app.engine.end_session(c).await
    {
        return failure_page(&e);
    }
    Page::render(
        "message.html",
        context! { heading => "You are signed out", message => "You can close this window." },
        Framing::Nobody,
    )
    .cookie(set_cookie(SESSION_COOKIE, "", 0, secure(&app)))
    .cookie(set_cookie(CSRF_COOKIE, "", 0, secure(&app)))
    .into_response()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The development callback: shows the code (or the error) so a partner can test the flow
/// before registering a redirect URI. Only `--dev` clients may be sent here (checked at
/// `/authorize`); the page itself only displays its query.
async fn debug_callback(Query(q): Query<CallbackQuery>) -> Response {
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
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_795_293_544), "2026-11-21");
        assert_eq!(date(951_782_400), "2000-02-29");
    }

    #[test]
    fn repeated_authorize_parameters_are_refused() {
        assert!(authorize_params(Some("client_id=a&client_id=b")).is_err());
        let p = authorize_params(Some("client_id=a&scope=x+y&other=1")).unwrap();
        assert_eq!(p.scope.as_deref(), Some("x y"));
    }
}
