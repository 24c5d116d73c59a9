//! Resource owner password credentials (RFC 6749 §4.3), as seed 002 uses it: a client of a
//! partner signs in that partner's `admin` user (user_token) or `customer` user, whose password is
//! the `clientUserToken` Tessera generated at sign-up (customer_token). Usernames are looked up
//! only within the client's partner, and a customer signs in only through the client that
//! signed it up. No refresh token (seed 002: "No refresh token is issued").
//! RFC 9700 §2.4 deprecates this grant; it is offered only to clients registered for it.

use crate::caller::{Caller, effective_scope};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::grants::{Issued, base_claims};
use crate::jwt::{Claims, TokenUse};
use crate::model::{GrantType, Role};
use crate::scope::ScopeSet;

pub struct Request {
    pub username: String,
    /// Never printed by `Debug`.
    pub password: String,
    pub scope: ScopeSet,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Password")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("scope", &self.scope)
            .finish()
    }
}

#[tracing::instrument(skip_all, name = "password", fields(client_id = caller.client_id()))]
pub async fn grant(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    now: i64,
) -> Result<Issued, EngineError> {
    let Caller::Client { partner, .. } = caller else {
        return Err(EngineError::UnauthorizedClient(GrantType::Password));
    };
    let scope = effective_scope(request.scope, caller)?;
    let user = engine
        .authenticate_user(
            &partner.id,
            caller.client_id(),
            &request.username,
            &request.password,
            &[Role::Admin, Role::Customer],
            now,
        )
        .await?;
    let token_use = match user.role {
        Role::Admin => TokenUse::UserToken,
        // A customer signs in only through the client that signed it up; to another client of
        // the partner its clientUserToken is as wrong as any other password.
        Role::Customer => TokenUse::CustomerToken,
        // Members sign in through the authorization pages; authenticate_user refused them as a
        // wrong password.
        Role::Member => return Err(EngineError::InvalidUserCredentials),
    };
    let ttl = engine.config.user_token_ttl;
    let claims = Claims {
        account_id: user.account_id.clone(),
        role: Some(user.role.as_str().to_string()),
        ..base_claims(
            engine,
            caller,
            user.id.clone(),
            scope.to_claim(),
            token_use,
            ttl,
            now,
        )
    };
    Ok(Issued {
        access_token: engine.mint(&claims),
        jti: claims.jti.clone(),
        subject: claims.sub.clone(),
        expires_in: ttl,
        refresh_token: None,
        scope,
        token_use,
        id_token: None,
    })
}
