//! Users: create, set the password, end the browser sessions.

use super::*;

#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub partner_id: String,
    pub username: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub account_id: Option<String>,
}
redacted!(CreateUser { partner_id, username, role, account_id } secret { password });

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRef {
    pub user_id: String,
}

pub async fn create_user(
    store: &dyn Store,
    passwords: &Passwords,
    by: &Operator,
    input: &CreateUser,
    now: i64,
) -> Result<UserRef, AdminError> {
    let user = admin::create_user(
        store,
        passwords,
        NewUser {
            partner_id: &input.partner_id,
            username: &input.username,
            password: &input.password,
            role: input.role,
            account_id: input.account_id.as_deref(),
        },
        &Changing {
            by,
            change: "user.create",
            now,
        },
    )
    .await?;
    Ok(UserRef { user_id: user.id })
}

pub async fn set_user_password(
    store: &dyn Store,
    passwords: &Passwords,
    by: &Operator,
    partner_id: &str,
    username: &str,
    password: &str,
    now: i64,
) -> Result<UserRef, AdminError> {
    let changing = Changing {
        by,
        change: "user.set_password",
        now,
    };
    let id = admin::set_user_password(store, passwords, partner_id, username, password, &changing)
        .await?;
    Ok(UserRef { user_id: id })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    pub user_id: String,
    /// Browser sessions that ended.
    pub sessions: u64,
}

/// End every browser session of a user (`tessera user sessions revoke`).
pub async fn end_user_sessions(
    store: &dyn Store,
    by: &Operator,
    partner_id: &str,
    username: &str,
    now: i64,
) -> Result<SessionsEnded, AdminError> {
    let changing = Changing {
        by,
        change: "user.sessions_revoke",
        now,
    };
    let (user_id, sessions) =
        admin::end_user_sessions(store, partner_id, username, &changing).await?;
    Ok(SessionsEnded { user_id, sessions })
}
