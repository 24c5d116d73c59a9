//! The grants: one module per grant type, each a plain function
//! `(engine, caller, request, now) -> Result<Issued, EngineError>`. Dialects parse their wire
//! format into a [`GrantRequest`] and render the [`Issued`] or [`EngineError`] in their own shape;
//! no grant knows which dialect called it.

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;
pub mod token_exchange;

use crate::audit::TokenIssued;
use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::jwt::{Claims, TokenUse};
use crate::model::GrantType;
use crate::scope::ScopeSet;
use crate::secret::Secret;

/// A token request, parsed out of either dialect.
#[derive(Debug)]
pub enum GrantRequest {
    AuthorizationCode(authorization_code::Request),
    ClientCredentials(client_credentials::Request),
    Password(password::Request),
    TokenExchange(token_exchange::Request),
    RefreshToken(refresh_token::Request),
}

impl GrantRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            GrantRequest::AuthorizationCode(_) => GrantType::AuthorizationCode,
            GrantRequest::ClientCredentials(_) => GrantType::ClientCredentials,
            GrantRequest::Password(_) => GrantType::Password,
            GrantRequest::TokenExchange(_) => GrantType::TokenExchange,
            GrantRequest::RefreshToken(_) => GrantType::RefreshToken,
        }
    }
}

/// What a grant hands out. `Debug` prints no token.
pub struct Issued {
    pub access_token: String,
    /// The access token's `jti` and `sub`, for the audit trail.
    pub jti: String,
    pub subject: String,
    pub expires_in: i64,
    pub refresh_token: Option<Secret>,
    pub scope: ScopeSet,
    pub token_use: TokenUse,
    /// An OpenID Connect ID token, for an authorization code of an `openid` request.
    pub id_token: Option<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("jti", &self.jti)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("token_use", &self.token_use)
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Engine {
    /// Run one token request: rate limit, then the grant.
    pub async fn grant(
        &self,
        caller: &Caller,
        request: GrantRequest,
        now: i64,
    ) -> Result<Issued, EngineError> {
        self.check_rate(caller.rate_key()).await?;
        if !caller.may_use(request.grant_type()) {
            return Err(EngineError::UnauthorizedClient(request.grant_type()));
        }
        let grant = request.grant_type();
        let issued = match request {
            GrantRequest::AuthorizationCode(r) => {
                authorization_code::grant(self, caller, r, now).await
            }
            GrantRequest::ClientCredentials(r) => client_credentials::grant(self, caller, r, now),
            GrantRequest::Password(r) => password::grant(self, caller, r, now).await,
            GrantRequest::TokenExchange(r) => token_exchange::grant(self, caller, r, now).await,
            GrantRequest::RefreshToken(r) => refresh_token::grant(self, caller, r, now).await,
        };
        if let Ok(issued) = &issued {
            let label = grant.name();
            crate::telemetry::issued(label, caller.kind());
            if self.config.audit_tokens {
                self.audit_issued(TokenIssued::new(
                    now,
                    caller,
                    label,
                    &issued.subject,
                    &issued.jti,
                    issued.refresh_token.is_some(),
                ));
            }
        }
        issued
    }
}

/// The claims every access token carries (README, *Tokens*), for `sub`, issued now to the caller; grants
/// add their own (`account_id`, `role`, `act`, `sid`) with struct-update syntax.
pub(crate) fn base_claims(
    engine: &Engine,
    caller: &Caller,
    sub: String,
    scope: String,
    token_use: TokenUse,
    ttl: i64,
    now: i64,
) -> Claims {
    let partner = caller.partner();
    Claims {
        iss: engine.config.issuer.clone(),
        sub,
        aud: engine.config.audience.clone(),
        exp: now + ttl,
        iat: now,
        jti: new_jti(),
        client_id: caller.client_id().to_string(),
        scope,
        token_use,
        partner_id: Some(partner.id.clone()),
        org_code: Some(partner.org_code.clone()),
        account_id: None,
        role: None,
        act: None,
        sid: None,
        exchanged_from: Vec::new(),
    }
}

/// A fresh `jti` (UUID v7: unique and time-ordered).
pub(crate) fn new_jti() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_carries_no_token() {
        let r = refresh_token::Request {
            refresh_token: "trt_SECRET".into(),
            scope: None,
        };
        let x = token_exchange::Request {
            subject_token: "eyJ.SECRET.x".into(),
            subject_token_type: token_exchange::TokenType::MachineToken,
            requested_subject: Some("a".into()),
            scope: ScopeSet::default(),
            actor_token: Some("eyJ.SECRET.z".into()),
            audience: None,
        };
        let i = Issued {
            access_token: "eyJ.SECRET.y".into(),
            jti: "j".into(),
            subject: "s".into(),
            expires_in: 1,
            refresh_token: Some(crate::secret::generate(
                crate::secret::SecretKind::RefreshToken,
            )),
            scope: ScopeSet::default(),
            token_use: TokenUse::ClientAccessToken,
            id_token: Some("eyJ.IDSECRET.z".into()),
        };
        for text in [format!("{r:?}"), format!("{x:?}"), format!("{i:?}")] {
            assert!(!text.contains("SECRET") && !text.contains("trt_"), "{text}");
        }
    }
}
