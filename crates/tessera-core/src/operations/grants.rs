//! Users' consents: withdraw one for a user.

use super::*;
pub use tessera_proto::admin::GrantRevoked;

/// Withdraw a user's consent for a client, as the user could on the connected-applications page.
pub async fn revoke_grant(
    store: &dyn Store,
    by: &Operator,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<GrantRevoked, AdminError> {
    let changing = Changing {
        by,
        change: "grant.revoke",
        now,
    };
    if !admin::revoke_grant(store, user_id, client_id, &changing).await? {
        return Err(AdminError::NotFound(format!(
            "user {user_id} has no active grant for client {client_id}"
        )));
    }
    Ok(GrantRevoked {
        user_id: user_id.into(),
        client_id: client_id.into(),
        revoked: true,
    })
}
