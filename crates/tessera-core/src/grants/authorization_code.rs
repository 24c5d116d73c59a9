//! `authorization_code` (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.6). The code is spent
//! atomically on first presentation; a second presentation fails and revokes what the first
//! issued (RFC 6749 §4.1.2, RFC 9700 §4.2). Tokens name the user in `sub` and their account in
//! `account_id`, and rest on the user's grant: revoking it revokes them. A code of an `openid`
//! request also yields an OpenID Connect ID token (Core §3.1.3.3) for the client: `sub`,
//! `auth_time`, `sid` and `nonce` as bound at consent, `at_hash` of the access token.

use crate::audit::{AuditEvent, Event};
use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::{EngineError, Field};
use crate::grants::{Issued, base_claims};
use crate::jwt::{Claims, IdTokenClaims, TokenUse, at_hash};
use crate::model::{GrantType, RefreshFamily, RefreshToken};
use crate::pkce::{pkce_matches, pkce_value_ok};
use crate::policy::{ID_TOKEN_TTL, family_revocation_until};
use crate::scope::{OPENID, ScopeSet};
use crate::secret::{SecretDigest, SecretKind, generate};
use crate::store::{CodeTaking, StoreError};

pub struct Request {
    /// The client the code was issued to; the partner dialect names it, the standard dialect
    /// authenticates it.
    pub client_id: Option<String>,
    /// Never printed by `Debug`.
    pub code: String,
    pub redirect_uri: Option<String>,
    /// Never printed by `Debug`.
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("client_id", &self.client_id)
            .field("code", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("code_verifier", &"<redacted>")
            .finish()
    }
}

#[tracing::instrument(skip_all, name = "authorization_code", fields(client_id = caller.client_id()))]
pub async fn grant(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    now: i64,
) -> Result<Issued, EngineError> {
    // Which registered client is redeeming the code.
    let client = match caller {
        Caller::Client { client, .. } => {
            if request
                .client_id
                .as_deref()
                .is_some_and(|id| id != client.id)
            {
                return Err(EngineError::ClientIdMismatch);
            }
            std::sync::Arc::clone(client)
        }
        Caller::Partner(partner) => {
            let id = request
                .client_id
                .as_deref()
                .ok_or_else(|| EngineError::field(Field::ClientId, "is required"))?;
            engine
                .client(id)
                .await?
                .filter(|c| c.partner_id == partner.id)
                .ok_or(EngineError::ClientIdMismatch)?
        }
    };
    let verifier = match request.code_verifier.as_deref() {
        Some(v) if pkce_value_ok(v) => v,
        Some(_) => {
            return Err(EngineError::CodeVerifierInvalid(
                "code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
            ));
        }
        None => {
            return Err(EngineError::CodeVerifierInvalid(
                "code_verifier is required",
            ));
        }
    };
    if SecretKind::of(&request.code) != Some(SecretKind::AuthorizationCode) {
        return Err(EngineError::AuthorizationCodeInvalid(
            "it is not a Tessera authorization code",
        ));
    }
    let code = match engine
        .flows()
        .take_authorization_code(&SecretDigest::of(&request.code), &client.id, now)
        .await?
    {
        CodeTaking::Taken(code) => code,
        CodeTaking::Unknown => return Err(EngineError::AuthorizationCodeInvalid("it is unknown")),
        CodeTaking::OtherClient => {
            return Err(EngineError::AuthorizationCodeInvalid(
                "it was issued to another client",
            ));
        }
        CodeTaking::Reused(code) => {
            tracing::warn!("authorization code reused; revoking what its first use issued");
            let until = family_revocation_until(now);
            engine
                .tokens()
                .revoke_family(&code.family_id, until, now)
                .await?;
            engine.note_revoked(&code.family_id, until);
            crate::telemetry::refresh("family_revoked");
            engine.audit(
                AuditEvent::new(Event::RefreshReuseDetected, now)
                    .client(&code.client_id)
                    .detail("authorization_code_reused", true)
                    .detail("refresh_family", code.family_id.as_str()),
            );
            return Err(EngineError::AuthorizationCodeInvalid(
                "it was already used (a failed presentation spends it too); any tokens issued with it are revoked",
            ));
        }
    };
    if code.expires_at <= now {
        return Err(EngineError::AuthorizationCodeInvalid("it has expired"));
    }
    if code.client_id != client.id {
        return Err(EngineError::AuthorizationCodeInvalid(
            "it was issued to another client",
        ));
    }
    if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Err(EngineError::RedirectUriMismatch);
    }
    if !pkce_matches(&code.code_challenge_method, &code.code_challenge, verifier) {
        return Err(EngineError::CodeVerifierInvalid(
            "code_verifier does not match the code_challenge",
        ));
    }
    let partner = caller.partner();
    let scope = ScopeSet::parse(&code.scope).map_err(|_| EngineError::Internal)?;
    // The family starts, with its first refresh token if the client may refresh, in one write
    // that reads the grant's and the family's revoked state: a withdrawal or a second
    // presentation of the code that got there first refuses it, one that comes later revokes
    // what it wrote.
    let refresh = client
        .grant_types
        .contains(&GrantType::RefreshToken)
        .then(|| generate(SecretKind::RefreshToken));
    let first = refresh.as_ref().map(|secret| RefreshToken {
        digest: secret.digest(),
        family_id: code.family_id.clone(),
        partner_id: partner.id.clone(),
        client_id: client.id.clone(),
        subject: code.user_id.clone(),
        account_id: code.account_id.clone(),
        scope: code.scope.clone(),
        issued_at: now,
        expires_at: engine.config.first_refresh_expiry(now),
        family_issued_at: now,
        rotated_at: None,
        revoked_at: None,
        grant_id: Some(code.grant_id.clone()),
        actor: None,
    });
    let family = RefreshFamily {
        id: code.family_id.clone(),
        grant_id: Some(code.grant_id.clone()),
        issued_at: now,
    };
    match engine.tokens().start_family(&family, first.as_ref()).await {
        Ok(()) => {}
        Err(StoreError::Revoked("grant")) => return Err(EngineError::MissingGrant),
        Err(StoreError::Revoked(_)) => {
            return Err(EngineError::AuthorizationCodeInvalid(
                "it was already used (a failed presentation spends it too); any tokens issued with it are revoked",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let ttl = engine
        .config
        .ttl_within_family(engine.config.client_access_token_ttl, now, now);
    let claims = Claims {
        client_id: client.id.clone(),
        account_id: code.account_id.clone(),
        sid: Some(code.family_id.clone()),
        ..base_claims(
            engine,
            caller,
            code.user_id.clone(),
            code.scope.clone(),
            TokenUse::ClientAccessToken,
            ttl,
            now,
        )
    };
    let access_token = engine.mint(&claims);
    let id_token = match (scope.contains(OPENID), code.auth_time, &code.sid) {
        (true, Some(auth_time), Some(sid)) => Some(engine.mint_id_token(&IdTokenClaims {
            iss: claims.iss.clone(),
            sub: claims.sub.clone(),
            aud: client.id.clone(),
            exp: now + ID_TOKEN_TTL,
            iat: now,
            auth_time,
            nonce: code.nonce.clone(),
            at_hash: at_hash(&access_token),
            sid: sid.clone(),
        })?),
        _ => None,
    };
    Ok(Issued {
        access_token,
        id_token,
        jti: claims.jti.clone(),
        subject: claims.sub.clone(),
        expires_in: ttl,
        refresh_token: refresh,
        scope,
        token_use: TokenUse::ClientAccessToken,
    })
}
