//! `/admin/v1/partners` and `/admin/v1/partner-tokens`: partners, their status, password and API tokens.

use super::*;

#[utoipa::path(get, path = "/admin/v1/partners", tag = "partners", params(PageParams), responses((status = 200, description = "A page of partners", body = inventory::Page<inventory::PartnerView>)))]
pub(super) async fn partners(State(app): State<AppState>, q: QueryOf<PageParams>) -> Answer {
    let q = query(q)?;
    ok(inventory::partners(admin(&app)?.store.as_ref(), &page(&q.after, q.limit)).await?)
}

#[utoipa::path(get, path = "/admin/v1/partners/{id}", tag = "partners", params(("id" = String, Path)), responses((status = 200, description = "The partner", body = inventory::PartnerView)))]
pub(super) async fn partner(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::partner(admin(&app)?.store.as_ref(), &id).await?)
}

#[utoipa::path(post, path = "/admin/v1/partners", tag = "partners", request_body = ops::CreatePartner, params(IdempotencyKey), responses((status = 201, description = "Created", body = ops::PartnerCreated)))]
pub(super) async fn create_partner(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input = ops::NewPartner::try_from(body::<ops::CreatePartner>(&raw)?)?;
    let store = admin(&app)?.store.as_ref();
    let passwords = app.engine.passwords();
    let out = ops::create_partner(store, passwords, &by(&token), &input, unix_now()).await?;
    applied(&app).await;
    created(out)
}

#[utoipa::path(put, path = "/admin/v1/partners/{id}/status", tag = "partners", params(("id" = String, Path)), request_body = tessera_proto::admin::PartnerStatusBody, responses((status = 200, description = "Set", body = ops::PartnerStatusSet)))]
pub(super) async fn partner_status(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let tessera_proto::admin::PartnerStatusBody { status } = body(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let out = ops::set_partner_status(store, &by(&token), &id, status, unix_now()).await?;
    applied(&app).await;
    ok(out)
}

#[utoipa::path(put, path = "/admin/v1/partners/{id}/password", tag = "partners", params(("id" = String, Path)), request_body = PasswordBody, responses((status = 200, description = "Set", body = ops::PartnerRef)))]
pub(super) async fn partner_password(
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
pub(super) async fn create_partner_token(
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
pub(super) async fn revoke_partner_tokens(
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
pub(super) struct TokenBody {
    token: String,
}

#[utoipa::path(post, path = "/admin/v1/partner-tokens/revoke", tag = "partners", request_body = TokenBody, params(IdempotencyKey), responses((status = 200, description = "Revoked", body = ops::Revoked)))]
pub(super) async fn revoke_partner_token(
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
