//! RFC 8693 token exchange: a partner trades its machine_token for a client access token and a
//! refresh token that act for one of its accounts (seed 000, Step 3). The access token names the
//! account in `sub` and `account_id`, and the partner in the `act` claim (RFC 8693 §4.1).

use crate::engine::Engine;
use crate::error::GrantError;
use crate::grants::{Caller, Issued, MACHINE_TOKEN_TYPE, new_jti, require_within};
use crate::jwt::{Actor, Claims, TokenUse};
use crate::model::RefreshToken;
use crate::scope::ScopeSet;
use crate::secret::{SecretKind, generate};

pub struct Request {
    /// A bearer credential: never printed by `Debug`.
    pub subject_token: String,
    pub subject_token_type: String,
    /// The account to act for.
    pub requested_subject: String,
    pub scope: ScopeSet,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchange")
            .field("subject_token", &"<redacted>")
            .field("subject_token_type", &self.subject_token_type)
            .field("requested_subject", &self.requested_subject)
            .field("scope", &self.scope)
            .finish()
    }
}

#[tracing::instrument(skip_all, name = "token_exchange", fields(client_id = caller.client_id()))]
pub async fn grant(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    now: i64,
) -> Result<Issued, GrantError> {
    let Caller::Partner(partner) = caller;
    if request.subject_token_type != MACHINE_TOKEN_TYPE {
        return Err(GrantError::SubjectTokenTypeMismatch {
            expected: MACHINE_TOKEN_TYPE,
        });
    }
    let subject = engine.verify_token(&request.subject_token, now)?;
    if subject.token_use != TokenUse::MachineToken {
        return Err(GrantError::SubjectTokenTypeMismatch {
            expected: MACHINE_TOKEN_TYPE,
        });
    }
    if subject.partner_id.as_deref() != Some(partner.id.as_str()) {
        return Err(GrantError::RequestedSubjectMismatch);
    }
    if request.scope.is_empty() {
        return Err(GrantError::field(
            "token_exchange_data.scope",
            "request at least one scope",
        ));
    }
    let granted = ScopeSet::parse(&subject.scope).map_err(|_| GrantError::Internal)?;
    require_within(&request.scope, &granted)?;
    require_within(&request.scope, &partner.scopes)?;
    let account = engine
        .account(&request.requested_subject)
        .await?
        .filter(|a| a.partner_id == partner.id)
        .ok_or(GrantError::NotPartnersResource("account"))?;

    let refresh = generate(SecretKind::RefreshToken);
    let family_id = new_jti();
    let record = RefreshToken {
        digest: refresh.digest(),
        family_id: family_id.clone(),
        partner_id: partner.id.clone(),
        client_id: caller.client_id().to_string(),
        subject: account.id.clone(),
        account_id: Some(account.id.clone()),
        scope: request.scope.to_claim(),
        issued_at: now,
        expires_at: now + engine.config.refresh_token_ttl,
        family_issued_at: now,
        rotated_at: None,
        revoked_at: None,
    };
    // Durable before it is shown: the response is built only after the commit.
    engine.store.insert_refresh_token(&record).await?;

    let ttl = engine.config.client_access_token_ttl;
    let claims = account_claims(engine, caller, &record, ttl, now);
    Ok(Issued {
        access_token: engine.mint(&claims),
        expires_in: ttl,
        refresh_token: Some(refresh),
        scope: request.scope,
        token_use: TokenUse::ClientAccessToken,
    })
}

/// Claims of a client access token for the account (and family) of a refresh-token record.
pub(crate) fn account_claims(
    engine: &Engine,
    caller: &Caller,
    record: &RefreshToken,
    ttl: i64,
    now: i64,
) -> Claims {
    Claims {
        iss: engine.config.issuer.clone(),
        sub: record.subject.clone(),
        aud: engine.config.audience.clone(),
        exp: now + ttl,
        iat: now,
        jti: new_jti(),
        client_id: record.client_id.clone(),
        scope: record.scope.clone(),
        token_use: TokenUse::ClientAccessToken,
        partner_id: Some(record.partner_id.clone()),
        org_code: Some(caller.partner().org_code.clone()),
        account_id: record.account_id.clone(),
        role: None,
        act: Some(Actor {
            sub: record.partner_id.clone(),
        }),
        sid: Some(record.family_id.clone()),
    }
}
