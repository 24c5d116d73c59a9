//! The admin HTTP API (`/admin/v1/...`, JSON): the CLI's operations for a platform's back
//! office. Every call needs an admin token (`tessera admin-token create --scopes read,write`):
//! `read` for `GET`, `write` for everything else. Handlers are thin: they parse JSON into the
//! inputs of [`tessera_core::operations`] (the same code the CLI runs) and answer its outputs;
//! listings are [`tessera_core::inventory`] pages (`?after=<next>&limit=`). [`guard`] does what
//! every call shares: the token, the scope, the audit of reads (writes are audited by the
//! operations), and `Idempotency-Key` replays. Errors are RFC 9457 problems ([`problem`]).
//!
//! It is served on the main listener, on its own (`--admin-listen`), or not at all.

mod guard;
mod openapi;
pub mod problem;

use openapi::Conventions;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::audit::AuditQuery;
use tessera_core::inventory::{self, PageRequest};
use tessera_core::keys::{Alg, KeyUse};
use tessera_core::model::{AdminToken, PartnerStatus, Role};
use tessera_core::operations::{self as ops, Operator};
use tessera_core::store::{GrantsOf, UserFilter};
use tessera_core::unix_now;

use crate::app::{AdminState, AppState};
use crate::body::{RawBody, bytes, parse_json};
use problem::Problem;

pub fn routes(app: &AppState) -> Router<AppState> {
    let api = Router::new()
        .route("/partners", get(partners).post(create_partner))
        .route("/partners/{id}", get(partner))
        .route("/partners/{id}/status", put(partner_status))
        .route("/partners/{id}/password", put(partner_password))
        .route(
            "/partners/{id}/tokens",
            post(create_partner_token).delete(revoke_partner_tokens),
        )
        .route("/partner-tokens/revoke", post(revoke_partner_token))
        .route("/clients", get(clients).post(create_client))
        .route("/clients/{id}", get(client))
        .route("/clients/{id}/secret", post(rotate_secret))
        .route("/clients/{id}/status", put(client_status))
        .route("/users", get(users).post(create_user))
        .route("/users/{id}", get(user))
        .route("/users/{id}/password", put(user_password))
        .route(
            "/users/{id}/sessions",
            axum::routing::delete(end_user_sessions),
        )
        .route("/scopes", get(scopes).post(add_scopes))
        .route("/grants", get(grants))
        .route("/grants/revoke", post(revoke_grant))
        .route("/keys", get(keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/keys/{kid}/revoke", post(revoke_key))
        .route("/audit", get(audit))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::guard,
        ))
        // Public, like any API's documentation; everything else needs a token.
        .route("/openapi.json", get(openapi_json))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    Router::new().nest("/admin/v1", api)
}

async fn openapi_json() -> Response {
    use utoipa::OpenApi as _;
    crate::openapi::serve(AdminApi::openapi())
}

async fn method_not_allowed() -> Response {
    Problem::MethodNotAllowed.into_response()
}

async fn not_found() -> Response {
    Problem::Admin(tessera_core::operations::AdminError::NotFound(
        "no such admin API route; see /admin/v1/...".into(),
    ))
    .into_response()
}

type Answer = Result<Response, Problem>;

fn admin(app: &AppState) -> Result<&AdminState, Problem> {
    app.admin.as_deref().ok_or(Problem::Unavailable)
}

fn by(token: &AdminToken) -> Operator {
    Operator::api(&token.id)
}

fn body<T: DeserializeOwned>(raw: &RawBody) -> Result<T, Problem> {
    use crate::error::RequestError as R;
    bytes(raw).and_then(parse_json).map_err(|e| match e {
        R::BodyTooLarge(n) => Problem::TooLarge(n),
        // Name the field and what is wrong with it, not just that something is.
        R::Engine(tessera_core::EngineError::Validation(fields)) => Problem::BadRequest(
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => Problem::BadRequest(other.to_string()),
    })
}

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

fn created(value: impl serde::Serialize) -> Answer {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// A write reached the store and the change feed; this node applies it now rather than at its
/// next feed poll, so that the caller's next request sees it here.
async fn applied(app: &AppState) {
    if let Err(e) = app.engine.sync(unix_now()).await {
        tracing::warn!(error = %e, "could not apply an admin change at once");
    }
}

/// A page of a listing.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// The `next` of the previous page.
    after: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<u32>,
}

fn page(after: &Option<String>, limit: Option<u32>) -> PageRequest {
    PageRequest {
        after: after.clone(),
        limit,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ClientParams {
    /// Only this partner's clients.
    partner: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct UserParams {
    partner: Option<String>,
    account: Option<String>,
    role: Option<Role>,
    /// Exactly this username (compared in lower case).
    username: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GrantParams {
    /// The grants of this user (or give `client`).
    user: Option<String>,
    /// The grants to this client.
    client: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

type QueryOf<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn query<T: DeserializeOwned>(q: QueryOf<T>) -> Result<T, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::BadRequest(e.body_text()))
}

#[utoipa::path(get, path = "/admin/v1/partners", tag = "partners", params(PageParams), responses((status = 200, description = "A page of partners", body = inventory::Page<inventory::PartnerView>)))]
async fn partners(State(app): State<AppState>, q: QueryOf<PageParams>) -> Answer {
    let q = query(q)?;
    ok(inventory::partners(admin(&app)?.store.as_ref(), &page(&q.after, q.limit)).await?)
}

#[utoipa::path(get, path = "/admin/v1/partners/{id}", tag = "partners", params(("id" = String, Path)), responses((status = 200, description = "The partner", body = inventory::PartnerView)))]
async fn partner(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::partner(admin(&app)?.store.as_ref(), &id).await?)
}

#[utoipa::path(post, path = "/admin/v1/partners", tag = "partners", request_body = ops::CreatePartner, params(IdempotencyKey), responses((status = 201, description = "Created", body = ops::PartnerCreated)))]
async fn create_partner(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: ops::CreatePartner = body(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let passwords = app.engine.passwords();
    let out = ops::create_partner(store, passwords, &by(&token), &input, unix_now()).await?;
    applied(&app).await;
    created(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody<S> {
    status: S,
}

/// `{"status": "active" | "inactive"}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PartnerStatusBody {
    status: PartnerStatus,
}

/// `{"status": "active" | "disabled"}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ClientStatusBody {
    status: ops::ClientStatus,
}

/// `{"scopes": [...]}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ScopeList {
    scopes: Vec<inventory::ScopeView>,
}

/// `{"items": [...], "next"}`, newest first; `next` is the `before` of the next page.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct AuditPage {
    items: Vec<tessera_core::audit::ShownEvent>,
    next: Option<i64>,
}

/// The `Idempotency-Key` header of a `POST`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyKey {
    /// 1 to 255 printable characters: a repeat of the same request within 24 hours gets the
    /// first answer again.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

#[utoipa::path(put, path = "/admin/v1/partners/{id}/status", tag = "partners", params(("id" = String, Path)), request_body = PartnerStatusBody, responses((status = 200, description = "Set", body = ops::PartnerStatusSet)))]
async fn partner_status(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let StatusBody { status } = body::<StatusBody<PartnerStatus>>(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let out = ops::set_partner_status(store, &by(&token), &id, status, unix_now()).await?;
    applied(&app).await;
    ok(out)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

#[utoipa::path(put, path = "/admin/v1/partners/{id}/password", tag = "partners", params(("id" = String, Path)), request_body = PasswordBody, responses((status = 200, description = "Set", body = ops::PartnerRef)))]
async fn partner_password(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let PasswordBody { password } = body(&raw)?;
    let password = zeroize::Zeroizing::new(password);
    let store = admin(&app)?.store.as_ref();
    let passwords = app.engine.passwords();
    let out = ops::set_partner_password(store, passwords, &by(&token), &id, &password, unix_now())
        .await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(post, path = "/admin/v1/partners/{id}/tokens", tag = "partners", params(("id" = String, Path), IdempotencyKey), responses((status = 201, description = "A partner API token, shown once", body = ops::PartnerTokenCreated)))]
async fn create_partner_token(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
) -> Answer {
    let store = admin(&app)?.store.as_ref();
    let out = ops::create_partner_token(store, &by(&token), &id, unix_now()).await?;
    applied(&app).await;
    created(out)
}

#[utoipa::path(delete, path = "/admin/v1/partners/{id}/tokens", tag = "partners", params(("id" = String, Path)), responses((status = 200, description = "Revoked", body = ops::Revoked)))]
async fn revoke_partner_tokens(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
) -> Answer {
    let store = admin(&app)?.store.as_ref();
    let which = ops::PartnerTokens::AllOf(&id);
    let out = ops::revoke_partner_tokens(store, &by(&token), which, unix_now()).await?;
    applied(&app).await;
    ok(out)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

#[utoipa::path(post, path = "/admin/v1/partner-tokens/revoke", tag = "partners", request_body = TokenBody, params(IdempotencyKey), responses((status = 200, description = "Revoked", body = ops::Revoked)))]
async fn revoke_partner_token(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let TokenBody { token: presented } = body(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let which = ops::PartnerTokens::One(&presented);
    let out = ops::revoke_partner_tokens(store, &by(&token), which, unix_now()).await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(get, path = "/admin/v1/clients", tag = "clients", params(ClientParams), responses((status = 200, description = "A page of clients", body = inventory::Page<inventory::ClientView>)))]
async fn clients(State(app): State<AppState>, q: QueryOf<ClientParams>) -> Answer {
    let q = query(q)?;
    let store = admin(&app)?.store.as_ref();
    ok(inventory::clients(store, q.partner.as_deref(), &page(&q.after, q.limit)).await?)
}

#[utoipa::path(get, path = "/admin/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), responses((status = 200, description = "The client", body = inventory::ClientView)))]
async fn client(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::client(admin(&app)?.store.as_ref(), &id).await?)
}

#[utoipa::path(post, path = "/admin/v1/clients", tag = "clients", request_body = ops::CreateClient, params(IdempotencyKey), responses((status = 201, description = "Created; the secret is shown once", body = ops::ClientCreated)))]
async fn create_client(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: ops::CreateClient = body(&raw)?;
    let out =
        ops::create_client(admin(&app)?.store.as_ref(), &by(&token), &input, unix_now()).await?;
    applied(&app).await;
    created(out)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    /// Seconds the previous secret keeps working.
    #[serde(default)]
    overlap_secs: Option<i64>,
}

#[utoipa::path(post, path = "/admin/v1/clients/{id}/secret", tag = "clients", params(("id" = String, Path), IdempotencyKey), request_body(content = RotateSecretBody, description = "Optional"), responses((status = 200, description = "The new secret, shown once", body = ops::SecretRotated)))]
async fn rotate_secret(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let input: RotateSecretBody = match bytes(&raw) {
        Ok([]) => RotateSecretBody::default(),
        _ => body(&raw)?,
    };
    let store = admin(&app)?.store.as_ref();
    let now = unix_now();
    let out = ops::rotate_client_secret(store, &by(&token), &id, input.overlap_secs, now).await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(put, path = "/admin/v1/clients/{id}/status", tag = "clients", params(("id" = String, Path)), request_body = ClientStatusBody, responses((status = 200, description = "Set", body = ops::ClientStatusSet)))]
async fn client_status(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let StatusBody { status } = body::<StatusBody<ops::ClientStatus>>(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let out = ops::set_client_status(store, &by(&token), &id, status, unix_now()).await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(get, path = "/admin/v1/users", tag = "users", params(UserParams), responses((status = 200, description = "A page of users", body = inventory::Page<inventory::UserView>)))]
async fn users(State(app): State<AppState>, q: QueryOf<UserParams>) -> Answer {
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
async fn user(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::user(admin(&app)?.store.as_ref(), &id).await?)
}

#[utoipa::path(post, path = "/admin/v1/users", tag = "users", request_body = ops::CreateUser, params(IdempotencyKey), responses((status = 201, description = "Created", body = ops::UserRef)))]
async fn create_user(
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
async fn user_password(
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
async fn end_user_sessions(
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

#[utoipa::path(get, path = "/admin/v1/scopes", tag = "scopes", responses((status = 200, description = "The registered scopes", body = ScopeList)))]
async fn scopes(State(app): State<AppState>) -> Answer {
    ok(serde_json::json!({"scopes": inventory::scopes(admin(&app)?.store.as_ref()).await?}))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ScopesBody {
    names: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

#[utoipa::path(post, path = "/admin/v1/scopes", tag = "scopes", request_body = ScopesBody, params(IdempotencyKey), responses((status = 200, description = "Registered (idempotent)", body = ops::ScopesAdded)))]
async fn add_scopes(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: ScopesBody = body(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let now = unix_now();
    let out = ops::add_scopes(
        store,
        &by(&token),
        &input.names,
        input.description.as_deref(),
        now,
    )
    .await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(get, path = "/admin/v1/grants", tag = "grants", params(GrantParams), responses((status = 200, description = "A page of grants", body = inventory::Page<inventory::GrantView>)))]
async fn grants(State(app): State<AppState>, q: QueryOf<GrantParams>) -> Answer {
    let q = query(q)?;
    let of = match (&q.user, &q.client) {
        (Some(user), _) => GrantsOf::User(user.clone()),
        (None, Some(client)) => GrantsOf::Client(client.clone()),
        (None, None) => {
            return Err(Problem::BadRequest(
                "give ?user=<user id> or ?client=<client id>".into(),
            ));
        }
    };
    ok(inventory::grants(admin(&app)?.store.as_ref(), &of, &page(&q.after, q.limit)).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    user_id: String,
    client_id: String,
}

#[utoipa::path(post, path = "/admin/v1/grants/revoke", tag = "grants", request_body = GrantBody, params(IdempotencyKey), responses((status = 200, description = "Withdrawn", body = ops::GrantRevoked)))]
async fn revoke_grant(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: GrantBody = body(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let now = unix_now();
    let out = ops::revoke_grant(store, &by(&token), &input.user_id, &input.client_id, now).await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys", responses((status = 200, description = "Every signing key and its state", body = ops::KeyList)))]
async fn keys(State(app): State<AppState>) -> Answer {
    ok(ops::list_keys(admin(&app)?.store.as_ref(), unix_now()).await?)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    alg: Option<String>,
    /// Rotate the OpenID Connect ID-token key (always RS256) instead.
    #[serde(default)]
    id_token: bool,
}

#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "keys", request_body(content = RotateBody, description = "Optional"), params(IdempotencyKey), responses((status = 200, description = "The new active key", body = ops::KeyRotated)))]
async fn rotate_keys(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: RotateBody = match bytes(&raw) {
        Ok([]) => RotateBody::default(),
        _ => body(&raw)?,
    };
    let alg: Alg = input
        .alg
        .as_deref()
        .unwrap_or(app.engine.config().signing_alg.as_str())
        .parse()
        .map_err(|e: String| Problem::Admin(tessera_core::operations::AdminError::Invalid(e)))?;
    let purpose = if input.id_token {
        KeyUse::IdToken
    } else {
        KeyUse::Access
    };
    let a = admin(&app)?;
    let out = ops::rotate_keys(
        a.store.as_ref(),
        &by(&token),
        &a.master,
        purpose,
        alg,
        unix_now(),
    )
    .await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(post, path = "/admin/v1/keys/{kid}/revoke", tag = "keys", params(("kid" = String, Path), IdempotencyKey), responses((status = 200, description = "Revoked", body = ops::KeyRevoked)))]
async fn revoke_key(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(kid): Path<String>,
) -> Answer {
    let a = admin(&app)?;
    let out = ops::revoke_key(a.store.as_ref(), &by(&token), &a.master, &kid, unix_now()).await?;
    applied(&app).await;
    ok(out)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    since: Option<String>,
    until: Option<String>,
    partner: Option<String>,
    user: Option<String>,
    client: Option<String>,
    event: Option<String>,
    /// The `next` of the previous page: events older than this id.
    before: Option<i64>,
    limit: Option<u32>,
}

/// The audit trail, newest first: `?since=&until=` (Unix seconds, `YYYY-MM-DD`, RFC 3339 UTC,
/// or an age such as `24h`), `partner`, `user`, `client`, `event`, `limit` (1–1000); the next
/// page is `before=<next>` (an event id, so events of one second are never skipped).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(AuditParams), responses((status = 200, description = "Events, newest first", body = AuditPage)))]
async fn audit(State(app): State<AppState>, q: QueryOf<AuditParams>) -> Answer {
    let q = query(q)?;
    let now = unix_now();
    let at = |s: &Option<String>| {
        s.as_deref()
            .map(|s| tessera_core::calendar::parse_instant(s, now))
            .transpose()
            .map_err(|e| Problem::BadRequest(e.to_string()))
    };
    if let Some(e) = &q.event
        && tessera_core::audit::Event::parse(e).is_none()
    {
        return Err(Problem::BadRequest(format!("unknown event {e:?}")));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::Admin(
            tessera_core::operations::AdminError::Invalid("limit must be 1 to 1000".into()),
        ));
    }
    let query = AuditQuery {
        since: at(&q.since)?,
        until: at(&q.until)?,
        partner_id: q.partner,
        username: q
            .user
            .map(|u| tessera_core::identity::normalize_username(&u)),
        client_id: q.client,
        event: q.event,
        before: q.before,
        limit,
    };
    let events = admin(&app)?.store.query_audit(&query).await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    let items: Vec<tessera_core::audit::ShownEvent> = events.into_iter().map(Into::into).collect();
    ok(serde_json::json!({ "items": items, "next": next }))
}

/// The admin API's OpenAPI 3.1 document, generated from the types above and the operations'.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Tessera admin API", description = "The operator's operations over HTTP; every call needs an admin token."),
    paths(
        partners, partner, create_partner, partner_status, partner_password, create_partner_token,
        revoke_partner_tokens, revoke_partner_token, clients, client, create_client, rotate_secret,
        client_status, users, user, create_user, user_password, end_user_sessions, scopes, add_scopes, grants,
        revoke_grant, keys, rotate_keys, revoke_key, audit
    ),
    components(schemas(problem::ProblemBody)),
    modifiers(&Conventions)
)]
pub struct AdminApi;
