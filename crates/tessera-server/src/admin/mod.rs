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
pub mod problem;

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::audit::AuditQuery;
use tessera_core::inventory::{self, PageRequest};
use tessera_core::keys::{Alg, KeyUse, MasterKey};
use tessera_core::model::{AdminToken, PartnerStatus, Role};
use tessera_core::operations::{self as ops, Operator};
use tessera_core::store::{GrantsOf, Store, UserFilter};
use tessera_core::unix_now;

use crate::app::AppState;
use crate::body::{RawBody, bytes, parse_json};
use problem::Problem;

/// What the admin API needs beyond the engine: the store (it writes as the CLI does, and the
/// change feed tells every node) and the master key (to make signing keys).
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
}

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
        .route("/scopes", get(scopes).post(add_scopes))
        .route("/grants", get(grants))
        .route("/grants/revoke", post(revoke_grant))
        .route("/keys", get(keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/keys/{kid}/revoke", post(revoke_key))
        .route("/audit", get(audit))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::guard,
        ));
    Router::new().nest("/admin/v1", api)
}

async fn not_found() -> Response {
    Problem::Admin(tessera_core::admin::AdminError::NotFound(
        "no such admin API route; see /admin/v1/...".into(),
    ))
    .into_response()
}

type Answer = Result<Response, Problem>;

fn admin(app: &AppState) -> Result<&AdminState, Problem> {
    app.admin.as_deref().ok_or(Problem::Unavailable)
}

fn by(token: &AdminToken) -> Operator {
    Operator(format!("api:{}", token.id))
}

fn body<T: DeserializeOwned>(raw: &RawBody) -> Result<T, Problem> {
    bytes(raw)
        .and_then(parse_json)
        .map_err(|e| Problem::BadRequest(e.to_string()))
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

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<u32>,
    partner: Option<String>,
    account: Option<String>,
    role: Option<Role>,
    username: Option<String>,
    user: Option<String>,
    client: Option<String>,
}

impl PageQuery {
    fn page(&self) -> PageRequest {
        PageRequest {
            after: self.after.clone(),
            limit: self.limit,
        }
    }
}

fn query<T: DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::BadRequest(e.body_text()))
}

async fn partners(
    State(app): State<AppState>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let q = query(q)?;
    ok(inventory::partners(admin(&app)?.store.as_ref(), &q.page()).await?)
}

async fn partner(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::partner(admin(&app)?.store.as_ref(), &id).await?)
}

async fn create_partner(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: ops::CreatePartner = body(&raw)?;
    let out =
        ops::create_partner(admin(&app)?.store.as_ref(), &by(&token), &input, unix_now()).await?;
    applied(&app).await;
    created(out)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody<S> {
    status: S,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn partner_password(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let PasswordBody { password } = body(&raw)?;
    let password = zeroize::Zeroizing::new(password);
    let store = admin(&app)?.store.as_ref();
    let out = ops::set_partner_password(store, &by(&token), &id, &password, unix_now()).await?;
    applied(&app).await;
    ok(out)
}

async fn create_partner_token(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
) -> Answer {
    let store = admin(&app)?.store.as_ref();
    let out = ops::create_partner_token(store, &by(&token), &id, unix_now()).await?;
    created(out)
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

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

async fn clients(
    State(app): State<AppState>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let store = admin(&app)?.store.as_ref();
    ok(inventory::clients(store, q.partner.as_deref(), &q.page()).await?)
}

async fn client(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::client(admin(&app)?.store.as_ref(), &id).await?)
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateSecretBody {
    /// Seconds the previous secret keeps working.
    #[serde(default)]
    overlap_secs: Option<i64>,
}

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

async fn users(
    State(app): State<AppState>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let q = query(q)?;
    let filter = UserFilter {
        partner_id: q.partner.clone(),
        account_id: q.account.clone(),
        role: q.role,
        username: q.username.clone(),
    };
    ok(inventory::users(admin(&app)?.store.as_ref(), filter, &q.page()).await?)
}

async fn user(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::user(admin(&app)?.store.as_ref(), &id).await?)
}

async fn create_user(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: ops::CreateUser = body(&raw)?;
    let out =
        ops::create_user(admin(&app)?.store.as_ref(), &by(&token), &input, unix_now()).await?;
    created(out)
}

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

async fn scopes(State(app): State<AppState>) -> Answer {
    ok(serde_json::json!({"scopes": inventory::scopes(admin(&app)?.store.as_ref()).await?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopesBody {
    names: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

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

async fn grants(
    State(app): State<AppState>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
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
    ok(inventory::grants(admin(&app)?.store.as_ref(), &of, &q.page()).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    user_id: String,
    client_id: String,
}

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

async fn keys(State(app): State<AppState>) -> Answer {
    ok(ops::list_keys(admin(&app)?.store.as_ref(), unix_now()).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    alg: Option<String>,
    /// Rotate the OpenID Connect ID-token key (always RS256) instead.
    #[serde(default)]
    id_token: bool,
}

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
        .map_err(|e: String| Problem::Admin(tessera_core::admin::AdminError::Invalid(e)))?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    since: Option<String>,
    until: Option<String>,
    partner: Option<String>,
    user: Option<String>,
    client: Option<String>,
    event: Option<String>,
    limit: Option<u32>,
}

/// The audit trail, newest first: `?since=&until=` (Unix seconds, `YYYY-MM-DD`, RFC 3339 UTC,
/// or an age such as `24h`), `partner`, `user`, `client`, `event`, `limit` (1–1000). The next
/// page is `until=<at of the last event>`.
async fn audit(
    State(app): State<AppState>,
    q: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
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
        return Err(Problem::BadRequest("limit must be 1 to 1000".into()));
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
        limit,
    };
    let events = admin(&app)?.store.query_audit(&query).await?;
    ok(serde_json::json!({ "items": events }))
}
