//! `client_credentials` (RFC 6749 §4.4). In the partner dialect it mints the partner's
//! machine_token; for a registered client (standard dialect) the client's app_token.
//! No refresh token, no database write.

use crate::caller::{Caller, effective_scope};
use crate::engine::Engine;
use crate::error::{EngineError, Field};
use crate::grants::{Issued, base_claims};
use crate::jwt::TokenUse;
use crate::scope::ScopeSet;

#[derive(Debug)]
pub struct Request {
    /// Empty means "everything the caller may have" for clients; partners must name scopes.
    pub scope: ScopeSet,
}

#[tracing::instrument(skip_all, name = "client_credentials", fields(client_id = caller.client_id()))]
pub fn grant(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    now: i64,
) -> Result<Issued, EngineError> {
    if matches!(caller, Caller::Partner(_)) && request.scope.is_empty() {
        return Err(EngineError::field(
            Field::Scope,
            "request at least one scope",
        ));
    }
    let scope = effective_scope(request.scope, caller)?;
    let (token_use, ttl) = match caller {
        Caller::Partner(_) => (TokenUse::MachineToken, engine.config.machine_token_ttl),
        Caller::Client { .. } => (TokenUse::AppToken, engine.config.app_token_ttl),
    };
    let claims = base_claims(
        engine,
        caller,
        caller.client_id().to_string(),
        scope.to_claim(),
        token_use,
        ttl,
        now,
    );
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
