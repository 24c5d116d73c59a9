//! Users: create, set the password, end the browser sessions.

use super::*;
pub use tessera_proto::admin::{CreateUser, SessionsEnded, UserRef};

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
