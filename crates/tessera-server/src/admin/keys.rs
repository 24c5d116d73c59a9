//! `/admin/v1/keys`: signing keys.

use super::*;

#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys", responses((status = 200, description = "Every signing key and its state", body = ops::KeyList)))]
pub(super) async fn keys(State(app): State<AppState>) -> Answer {
    ok(ops::list_keys(admin(&app)?.store.as_ref(), unix_now()).await?)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateBody {
    #[serde(default)]
    alg: Option<String>,
    /// Rotate the OpenID Connect ID-token key (always RS256) instead.
    #[serde(default)]
    id_token: bool,
}

#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "keys", request_body(content = RotateBody, description = "Optional"), params(IdempotencyKey), responses((status = 200, description = "The new active key", body = ops::KeyRotated)))]
pub(super) async fn rotate_keys(
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
pub(super) async fn revoke_key(
    State(app): State<AppState>,
    Extension(token): Extension<AdminToken>,
    Path(kid): Path<String>,
) -> Answer {
    let a = admin(&app)?;
    let out = ops::revoke_key(a.store.as_ref(), &by(&token), &a.master, &kid, unix_now()).await?;
    applied(&app).await;
    ok(out)
}
