//! `/admin/v1/grants`: users' consents.

use super::*;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantBody {
    user_id: String,
    client_id: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct GrantParams {
    /// The grants of this user (or give `client`).
    user: Option<String>,
    /// The grants to this client.
    client: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/admin/v1/grants", tag = "grants", params(GrantParams), responses((status = 200, description = "A page of grants", body = inventory::Page<inventory::GrantView>)))]
pub(super) async fn grants(State(app): State<AppState>, q: QueryOf<GrantParams>) -> Answer {
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

#[utoipa::path(post, path = "/admin/v1/grants/revoke", tag = "grants", request_body = GrantBody, params(IdempotencyKey), responses((status = 200, description = "Withdrawn", body = ops::GrantRevoked)))]
pub(super) async fn revoke_grant(
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
