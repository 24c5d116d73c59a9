//! OpenID Connect UserInfo (Core §5.3): what an access token of an `openid` sign-in may read
//! about its user. `sub` always; `name`, `given_name` and `family_name` with `profile`;
//! `email` and `email_verified` with `email` (when the username is an email address; Tessera
//! does not verify addresses, so `email_verified` is `false`).

use crate::engine::Engine;
use crate::error::EngineError;
use crate::identity::is_email;
use crate::jwt::TokenUse;
use crate::scope::{OPENID, ScopeSet};

pub use tessera_proto::standard::UserInfo;

/// The claims OpenID Connect discovery lists as supported: the ID token's and UserInfo's.
pub const CLAIMS_SUPPORTED: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "name",
    "given_name",
    "family_name",
    "email",
    "email_verified",
];

impl Engine {
    /// The UserInfo of a presented access token: one issued by an `openid` sign-in, still
    /// valid and not revoked, whose user still exists.
    pub async fn userinfo(&self, token: &str, now: i64) -> Result<UserInfo, EngineError> {
        let claims = self.verify_token(token, now)?;
        let scope = ScopeSet::parse(&claims.scope).unwrap_or_default();
        if claims.token_use != TokenUse::ClientAccessToken || !scope.contains(OPENID) {
            return Err(EngineError::Forbidden(
                "this access token was not issued for an OpenID Connect sign-in (scope openid)",
            ));
        }
        let user = self
            .user_by_id(&claims.sub)
            .await?
            .ok_or(EngineError::TokenUnknownOrRevoked)?;
        let mut info = UserInfo {
            sub: user.id.clone(),
            name: None,
            given_name: None,
            family_name: None,
            email: None,
            email_verified: None,
        };
        if scope.contains("profile") {
            let full: Vec<&str> = [user.first_name.as_deref(), user.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            info.name = (!full.is_empty()).then(|| full.join(" "));
            info.given_name = user.first_name.clone();
            info.family_name = user.last_name.clone();
        }
        if scope.contains("email") && is_email(&user.username) {
            info.email = Some(user.username.clone());
            info.email_verified = Some(false);
        }
        Ok(info)
    }
}
