//! The grants: one module per grant type, each a plain function
//! `(engine, caller, request, now) -> Result<Issued, GrantError>`. Dialects parse their wire
//! format into a [`GrantRequest`] and render the [`Issued`] or [`GrantError`] in their own shape;
//! no grant knows which dialect called it.

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;
pub mod token_exchange;

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::GrantError;
use crate::jwt::{Claims, TokenUse};
use crate::model::{Client, GrantType, Partner};
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::TokenOwner;

/// `subject_token_type` of a machine token (seed 000).
pub const MACHINE_TOKEN_TYPE: &str = "urn:wazzup:oauth:token-type:machine_token";

/// Who is asking, as the dialect authenticated them.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A partner, by Basic email:password or a partner API token (partner dialect). The partner
    /// is its own OAuth client: `client_id` claims name the partner id.
    Partner(Arc<Partner>),
    /// A registered OAuth client of a partner, by its id and secret (standard dialect).
    Client {
        client: Arc<Client>,
        partner: Arc<Partner>,
    },
}

impl Caller {
    pub fn partner(&self) -> &Arc<Partner> {
        match self {
            Caller::Partner(p) => p,
            Caller::Client { partner, .. } => partner,
        }
    }

    /// The OAuth client id the caller's tokens are issued to.
    pub fn client_id(&self) -> &str {
        match self {
            Caller::Partner(p) => &p.id,
            Caller::Client { client, .. } => &client.id,
        }
    }

    /// Scopes the caller may ask for at all: the partner's, narrowed by the client's.
    pub fn allowed_scopes(&self) -> ScopeSet {
        match self {
            Caller::Partner(p) => p.scopes.clone(),
            Caller::Client { client, partner } => ScopeSet::from_names(
                client
                    .scopes
                    .iter()
                    .filter(|s| partner.scopes.contains(s))
                    .map(str::to_string),
            ),
        }
    }

    /// Whether the caller may use `grant`: partners use the partner dialect's grants; clients
    /// only those registered for them.
    pub fn may_use(&self, grant: GrantType) -> bool {
        match self {
            Caller::Partner(_) => !matches!(grant, GrantType::Password),
            Caller::Client { client, .. } => client.grant_types.contains(&grant),
        }
    }

    /// Whose refresh tokens the caller may use.
    pub fn token_owner(&self) -> TokenOwner {
        match self {
            Caller::Partner(p) => TokenOwner::Partner(p.id.clone()),
            Caller::Client { client, .. } => TokenOwner::Client(client.id.clone()),
        }
    }

    /// The key its token requests are rate-limited under.
    fn rate_key(&self) -> &str {
        self.client_id()
    }
}

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
    pub expires_in: i64,
    pub refresh_token: Option<Secret>,
    pub scope: ScopeSet,
    pub token_use: TokenUse,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("token_use", &self.token_use)
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
    ) -> Result<Issued, GrantError> {
        self.check_rate(caller.rate_key())?;
        if !caller.may_use(request.grant_type()) {
            return Err(GrantError::UnauthorizedClient(
                request.grant_type().as_str(),
            ));
        }
        match request {
            GrantRequest::AuthorizationCode(r) => {
                authorization_code::grant(self, caller, r, now).await
            }
            GrantRequest::ClientCredentials(r) => client_credentials::grant(self, caller, r, now),
            GrantRequest::Password(r) => password::grant(self, caller, r, now).await,
            GrantRequest::TokenExchange(r) => token_exchange::grant(self, caller, r, now).await,
            GrantRequest::RefreshToken(r) => refresh_token::grant(self, caller, r, now).await,
        }
    }
}

/// The claims every access token carries (SPEC §2), for `sub`, issued now to the caller; grants
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
    }
}

/// A fresh `jti` (UUID v7: unique and time-ordered).
pub(crate) fn new_jti() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The requested scope, or all the caller may have when none was requested (RFC 6749 §3.3),
/// refused when it reaches outside what the caller may have.
pub(crate) fn effective_scope(
    requested: ScopeSet,
    caller: &Caller,
) -> Result<ScopeSet, GrantError> {
    let allowed = caller.allowed_scopes();
    if requested.is_empty() {
        return Ok(allowed);
    }
    require_within(&requested, &allowed)?;
    Ok(requested)
}

/// Refuse scopes outside `allowed`.
pub(crate) fn require_within(requested: &ScopeSet, allowed: &ScopeSet) -> Result<(), GrantError> {
    let outside = requested.outside(allowed);
    if outside.is_empty() {
        Ok(())
    } else {
        Err(GrantError::ScopeForbidden(outside))
    }
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
            subject_token_type: MACHINE_TOKEN_TYPE.into(),
            requested_subject: Some("a".into()),
            scope: ScopeSet::default(),
            actor: Some(("eyJ.SECRET.z".into(), "t".into())),
            audience: None,
            requested_token_type: None,
        };
        let i = Issued {
            access_token: "eyJ.SECRET.y".into(),
            expires_in: 1,
            refresh_token: Some(crate::secret::generate(
                crate::secret::SecretKind::RefreshToken,
            )),
            scope: ScopeSet::default(),
            token_use: TokenUse::ClientAccessToken,
        };
        for text in [format!("{r:?}"), format!("{x:?}"), format!("{i:?}")] {
            assert!(!text.contains("SECRET") && !text.contains("trt_"), "{text}");
        }
    }
}
