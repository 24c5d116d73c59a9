//! `client_credentials` (RFC 6749 §4.4). In the partner dialect it mints the partner's
//! machine_token (SPEC §2): no refresh token, no database write.

use crate::engine::Engine;
use crate::error::GrantError;
use crate::grants::{Caller, Issued, new_jti, require_within};
use crate::jwt::{Claims, TokenUse};
use crate::scope::ScopeSet;

#[derive(Debug)]
pub struct Request {
    pub scope: ScopeSet,
}

#[tracing::instrument(skip_all, name = "client_credentials", fields(client_id = caller.client_id()))]
pub fn grant(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    now: i64,
) -> Result<Issued, GrantError> {
    let Caller::Partner(partner) = caller;
    if request.scope.is_empty() {
        return Err(GrantError::field(
            "client_credentials_data.scope",
            "request at least one scope",
        ));
    }
    require_within(&request.scope, &partner.scopes)?;
    let ttl = engine.config.machine_token_ttl;
    let claims = Claims {
        iss: engine.config.issuer.clone(),
        sub: partner.id.clone(),
        aud: engine.config.audience.clone(),
        exp: now + ttl,
        iat: now,
        jti: new_jti(),
        client_id: partner.id.clone(),
        scope: request.scope.to_claim(),
        token_use: TokenUse::MachineToken,
        partner_id: Some(partner.id.clone()),
        org_code: Some(partner.org_code.clone()),
        account_id: None,
        role: None,
        act: None,
        sid: None,
    };
    Ok(Issued {
        access_token: engine.mint(&claims),
        expires_in: ttl,
        refresh_token: None,
        scope: request.scope,
        token_use: TokenUse::MachineToken,
    })
}
