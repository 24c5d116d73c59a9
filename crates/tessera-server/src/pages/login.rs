//! Sign-in, registration and sign-out pages.

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use tessera_core::model::{AuthorizationRequest, Client};
use tessera_core::{EngineError, unix_now};

use super::view::{self, BROWSER_COOKIE, Framing, Page, SESSION_COOKIE, csrf_token, set_cookie};
use super::{
    RequestQuery, checked_form, error_page, failure_page, flow_form, pending, secure, sentence,
    sign_in,
};
use crate::app::{AppState, Peer};
use crate::body::RawBody;

fn login_view(
    app: &AppState,
    headers: &HeaderMap,
    request: &AuthorizationRequest,
    client: &Client,
    username: &str,
    error: &str,
) -> Page {
    let (csrf, set) = csrf_token(&app.engine, headers, secure(app));
    let page = Page::render(
        "login.html",
        context! { app => client.name.as_str(), request => request.id.as_str(), csrf, username, error,
        registration => client.allow_registration },
        Framing::Client(client),
    );
    page.cookies(set)
}

pub(super) async fn login_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RequestQuery>,
) -> Response {
    let now = unix_now();
    match pending(&app, &headers, q.request.as_deref(), now).await {
        Ok((request, client)) => {
            login_view(&app, &headers, &request, &client, "", "").into_response()
        }
        Err(r) => r,
    }
}

pub(super) async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Response {
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
                EngineError::Locked { retry_after_secs } => {
                    format!("Too many failed attempts. Try again in {retry_after_secs} seconds.")
                }
                EngineError::Busy { .. } => {
                    return login_view(
                        &app,
                        &headers,
                        &request,
                        &client,
                        &username,
                        "Too many people are signing in right now. Try again in a moment.",
                    )
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .into_response();
                }
                EngineError::InvalidGrant(why) => sentence(why),
                EngineError::Unavailable | EngineError::Internal => return failure_page(&e),
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
    let (csrf, set) = csrf_token(&app.engine, headers, secure(app));
    let page = Page::render(
        "register.html",
        context! { app => client.name.as_str(), request => request.id.as_str(), csrf,
        account_name => fields.0, email => fields.1, errors },
        Framing::Client(client),
    );
    page.cookies(set)
}

pub(super) async fn register_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RequestQuery>,
) -> Response {
    let now = unix_now();
    match pending(&app, &headers, q.request.as_deref(), now).await {
        Ok((_, client)) if !client.allow_registration => no_registration(),
        Ok((request, client)) => {
            register_view(&app, &headers, &request, &client, ("", ""), Vec::new()).into_response()
        }
        Err(r) => r,
    }
}

fn no_registration() -> Response {
    error_page(
        "This application does not offer registration. Sign in with an existing account.",
        StatusCode::FORBIDDEN,
    )
}

pub(super) async fn register(
    State(app): State<AppState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: RawBody,
) -> Response {
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
        .register_account(
            &client,
            &name,
            &email,
            &password,
            &Peer(peer).requester(),
            now,
        )
        .await
    {
        Ok(user) => sign_in(&app, &request, &client, &user, now).await,
        Err(EngineError::Forbidden(_)) => no_registration(),
        Err(EngineError::RateLimited { retry_after_secs }) => error_page(
            &format!(
                "Too many accounts were created recently. Try again in {} minutes.",
                retry_after_secs.div_ceil(60)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(EngineError::Busy { .. }) => {
            let busy = "Too many people are signing in right now. Try again in a moment.";
            register_view(
                &app,
                &headers,
                &request,
                &client,
                (&name, &email),
                vec![busy.into()],
            )
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .into_response()
        }
        Err(EngineError::Validation(fields)) => {
            let errors = fields.into_iter().map(|f| sentence(&f.message)).collect();
            register_view(&app, &headers, &request, &client, (&name, &email), errors)
                .status(StatusCode::BAD_REQUEST)
                .into_response()
        }
        Err(e) => failure_page(&e),
    }
}

pub(super) async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Response {
    if let Err(r) = checked_form(&app, &headers, &body) {
        return *r;
    }
    if let Some(c) = view::cookie(&headers, SESSION_COOKIE, secure(&app))
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
    .cookie(set_cookie(BROWSER_COOKIE, "", 0, secure(&app)))
    .into_response()
}
