//! `/admin/v1/users`: users, their passwords and browser sessions.

use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UserParams {
    partner: Option<String>,
    account: Option<String>,
    role: Option<Role>,
    /// Exactly this username (compared in lower case).
    username: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/admin/v1/users", tag = "users", params(UserParams), responses((status = 200, description = "A page of users", body = inventory::Page<inventory::UserView>)))]
pub(super) async fn users(State(app): State<AppState>, q: QueryOf<UserParams>) -> Answer {
    let q = query(q)?;
    let filter = UserFilter {
        partner_id: q.partner.clone(),
        account_id: q.account.clone(),
        role: q.role,
        username: q.username.clone(),
    };
    ok(inventory::users(
        admin(&app)?.store.as_ref(),
        filter,
        &page(&q.after, q.limit),
    )
    .await?)
}

#[utoipa::path(get, path = "/admin/v1/users/{id}", tag = "users", params(("id" = String, Path)), responses((status = 200, description = "The user", body = inventory::UserView)))]
pub(super) async fn user(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::user(admin(&app)?.store.as_ref(), &id).await?)
}

#[utoipa::path(post, path = "/admin/v1/users", tag = "users", request_body = ops::CreateUser, params(IdempotencyKey), responses((status = 201, description = "Created", body = ops::UserRef)))]
pub(super) async fn create_user(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: ops::CreateUser = body(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let passwords = app.engine.passwords();
    let out = ops::create_user(store, passwords, &by(&token), &input, unix_now()).await?;
    applied(&app).await;
    created(out)
}

#[utoipa::path(put, path = "/admin/v1/users/{id}/password", tag = "users", params(("id" = String, Path)), request_body = PasswordBody, responses((status = 200, description = "Set", body = ops::UserRef)))]
pub(super) async fn user_password(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let PasswordBody { password } = body(&raw)?;
    let password = zeroize::Zeroizing::new(password);
    let store = admin(&app)?.store.as_ref();
    let user = inventory::user(store, &id).await?;
    let now = unix_now();
    let out = ops::set_user_password(
        store,
        app.engine.passwords(),
        &by(&token),
        &user.partner_id,
        &user.username,
        &password,
        now,
    )
    .await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(delete, path = "/admin/v1/users/{id}/sessions", tag = "users", params(("id" = String, Path)), responses((status = 200, description = "Every browser session of the user ended; a new /authorize needs a fresh sign-in", body = ops::SessionsEnded)))]
pub(super) async fn end_user_sessions(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
) -> Answer {
    let store = admin(&app)?.store.as_ref();
    let user = inventory::user(store, &id).await?;
    let out = ops::end_user_sessions(
        store,
        &by(&token),
        &user.partner_id,
        &user.username,
        unix_now(),
    )
    .await?;
    applied(&app).await;
    ok(out)
}
