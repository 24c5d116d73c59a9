//! The admin HTTP API's own tokens: create, list, revoke, authenticate.

use super::*;
pub use tessera_proto::admin::{AdminTokenCreated, AdminTokenRevoked, AdminTokenView};

/// Create an admin API token (`tat_` + 256 bits; only its SHA-256 is stored).
pub async fn create_admin_token(
    store: &dyn Store,
    by: &Operator,
    name: &str,
    scopes: &[AdminScope],
    now: i64,
) -> Result<AdminTokenCreated, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > crate::policy::MAX_NAME_LEN {
        return Err(AdminError::Invalid(format!(
            "the name must be 1 to {} characters",
            crate::policy::MAX_NAME_LEN
        )));
    }
    if scopes.is_empty() {
        return Err(AdminError::Invalid(
            "give at least one scope: read, write".into(),
        ));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    let secret = generate(SecretKind::AdminToken);
    let token = AdminToken {
        id: new_id(),
        name: name.to_string(),
        digest: secret.digest(),
        scopes: scopes.clone(),
        created_at: now,
        revoked_at: None,
    };
    let changing = Changing {
        by,
        change: "admin_token.create",
        now,
    };
    let event = changing.event(json!({"admin_token_id": token.id, "scopes": scopes}));
    store.insert_admin_token(&token, &[event]).await?;
    Ok(AdminTokenCreated {
        id: token.id,
        admin_token: secret.expose().to_string(),
        scopes,
    })
}

pub async fn list_admin_tokens(store: &dyn Store) -> Result<Vec<AdminTokenView>, AdminError> {
    Ok(store
        .list_admin_tokens()
        .await?
        .into_iter()
        .map(|t| AdminTokenView {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        })
        .collect())
}

/// Revoke an admin API token: its next call is refused (tokens are looked up on every call).
pub async fn revoke_admin_token(
    store: &dyn Store,
    by: &Operator,
    id: &str,
    now: i64,
) -> Result<AdminTokenRevoked, AdminError> {
    let changing = Changing {
        by,
        change: "admin_token.revoke",
        now,
    };
    let event = changing.event(json!({"admin_token_id": id}));
    if !store.revoke_admin_token(id, now, &[event]).await? {
        return Err(AdminError::NotFound(format!(
            "no unrevoked admin token {id}"
        )));
    }
    Ok(AdminTokenRevoked {
        id: id.into(),
        revoked: true,
    })
}

/// The unrevoked admin token a caller presented, if any.
pub async fn authenticate_admin(
    store: &dyn Store,
    presented: &str,
) -> Result<Option<AdminToken>, AdminError> {
    if SecretKind::of(presented) != Some(SecretKind::AdminToken) || presented.len() > 128 {
        return Ok(None);
    }
    Ok(store
        .admin_token(&SecretDigest::of(presented))
        .await?
        .filter(|t| t.revoked_at.is_none()))
}
