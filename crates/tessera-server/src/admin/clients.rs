//! `/admin/v1/clients`: OAuth clients, their secrets and status.

use super::*;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ClientParams {
    /// Only this partner's clients.
    partner: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/admin/v1/clients", tag = "clients", params(ClientParams), responses((status = 200, description = "A page of clients", body = inventory::Page<inventory::ClientView>)))]
pub(super) async fn clients(State(app): State<AppState>, q: QueryOf<ClientParams>) -> Answer {
    let q = query(q)?;
    let store = admin(&app)?.store.as_ref();
    ok(inventory::clients(store, q.partner.as_deref(), &page(&q.after, q.limit)).await?)
}

#[utoipa::path(get, path = "/admin/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), responses((status = 200, description = "The client", body = inventory::ClientView)))]
pub(super) async fn client(State(app): State<AppState>, Path(id): Path<String>) -> Answer {
    ok(inventory::client(admin(&app)?.store.as_ref(), &id).await?)
}

#[utoipa::path(post, path = "/admin/v1/clients", tag = "clients", request_body = ops::CreateClient, params(IdempotencyKey), responses((status = 201, description = "Created; the secret is shown once", body = ops::ClientCreated)))]
pub(super) async fn create_client(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    raw: RawBody,
) -> Answer {
    let input = ops::NewClient::try_from(body::<ops::CreateClient>(&raw)?)?;
    let out =
        ops::create_client(admin(&app)?.store.as_ref(), &by(&token), &input, unix_now()).await?;
    applied(&app).await;
    created(out)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateSecretBody {
    /// Seconds the previous secret keeps working.
    #[serde(default)]
    overlap_secs: Option<i64>,
}

#[utoipa::path(post, path = "/admin/v1/clients/{id}/secret", tag = "clients", params(("id" = String, Path), IdempotencyKey), request_body(content = RotateSecretBody, description = "Optional"), responses((status = 200, description = "The new secret, shown once", body = ops::SecretRotated)))]
pub(super) async fn rotate_secret(
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

#[utoipa::path(put, path = "/admin/v1/clients/{id}/status", tag = "clients", params(("id" = String, Path)), request_body = tessera_proto::admin::ClientStatusBody, responses((status = 200, description = "Set", body = ops::ClientStatusSet)))]
pub(super) async fn client_status(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(id): Path<String>,
    raw: RawBody,
) -> Answer {
    let tessera_proto::admin::ClientStatusBody { status } = body(&raw)?;
    let store = admin(&app)?.store.as_ref();
    let out = ops::set_client_status(store, &by(&token), &id, status, unix_now()).await?;
    applied(&app).await;
    ok(out)
}
