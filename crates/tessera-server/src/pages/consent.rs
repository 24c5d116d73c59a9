//! The consent page, and the user's connected applications with the withdrawal of a grant.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use tessera_core::unix_now;

use super::view::{self, Framing, Page, SESSION_COOKIE, csrf_token, redirect};
use super::{
    RequestQuery, checked_form, code_redirect, end_flow_with_error, failure_page, flow_form,
    pending, secure, signed_in,
};
use crate::app::AppState;
use crate::body::RawBody;

pub(super) async fn consent_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RequestQuery>,
) -> Response {
    let now = unix_now();
    let (request, client) = match pending(&app, &headers, q.request.as_deref(), now).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(user) = signed_in(&app, &headers, &request, &client, now).await else {
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
    let (csrf, set) = csrf_token(&app.engine, &headers, secure(&app));
    let page = Page::render(
        "consent.html",
        context! { app => view.client_name, scopes => view.scopes, request => request.id.as_str(),
        csrf, user => user.user.username.as_str() },
        Framing::Client(&client),
    );
    page.cookies(set).into_response()
}

pub(super) async fn consent(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Response {
    let now = unix_now();
    let (mut form, request, client) = match flow_form(&app, &headers, &body, now).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let Some(user) = signed_in(&app, &headers, &request, &client, now).await else {
        return redirect(
            &format!("/oauth/login?request={}", request.id),
            Vec::new(),
            &client.frame_origins,
        );
    };
    match form.take("decision").as_deref() {
        Some("approve") => match app.engine.approve(&request, &user, None, now).await {
            Ok(approved) => redirect(
                &code_redirect(&app, &approved),
                vec![view::end_flow_cookie(&request.id, secure(&app))],
                &client.frame_origins,
            ),
            Err(e) => failure_page(&e),
        },
        _ => {
            end_flow_with_error(
                &app,
                &request,
                &client,
                tessera_core::authorize::AuthorizeFailure::AccessDenied,
                "the user denied the request",
                Vec::new(),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub(super) struct NoticeQuery {
    notice: Option<String>,
}

pub(super) async fn grants_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let now = unix_now();
    let user = match view::cookie(&headers, SESSION_COOKIE, secure(&app)) {
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
    let (csrf, set) = csrf_token(&app.engine, &headers, secure(&app));
    let page = Page::render(
        "grants.html",
        context! { user => user.username.as_str(),
        grants => rows, csrf, notice },
        Framing::Nobody,
    );
    page.cookies(set).into_response()
}

/// `YYYY-MM-DD` of a unix time (UTC).
fn date(unix: i64) -> String {
    let mut day = tessera_core::calendar::format_instant(unix);
    day.truncate(10);
    day
}

pub(super) async fn revoke_grant(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: RawBody,
) -> Response {
    let now = unix_now();
    let mut form = match checked_form(&app, &headers, &body) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let user = match view::cookie(&headers, SESSION_COOKIE, secure(&app)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_795_293_544), "2026-11-21");
        assert_eq!(date(951_782_400), "2000-02-29");
    }
}
