//! `/admin/v1/scopes`: the scope registry.

use super::*;

#[utoipa::path(get, path = "/admin/v1/scopes", tag = "scopes", responses((status = 200, description = "The registered scopes", body = tessera_proto::admin::ScopeList)))]
pub(super) async fn scopes(State(app): State<AppState>) -> Answer {
    let scopes = inventory::scopes(admin(&app)?.store.as_ref()).await?;
    ok(tessera_proto::admin::ScopeList { scopes })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScopesBody {
    names: Vec<String>,
    #[serde(default)]
    description: Option<String>,
}

#[utoipa::path(post, path = "/admin/v1/scopes", tag = "scopes", request_body = ScopesBody, params(IdempotencyKey), responses((status = 200, description = "Registered (idempotent)", body = ops::ScopesAdded)))]
pub(super) async fn add_scopes(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input: ScopesBody = body(&raw)?;
    let names = ops::scope_names(&input.names)?;
    let store = admin(&app)?.store.as_ref();
    let now = unix_now();
    let out = ops::add_scopes(
        store,
        &by(&token),
        &names,
        input.description.as_deref(),
        now,
    )
    .await?;
    applied(&app).await;
    ok(out)
}
