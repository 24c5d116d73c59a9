//! `refresh_token` (RFC 6749 §6) with rotation on every use (RFC 9700 §4.14.2): the presented
//! token is exchanged atomically for a successor; of concurrent uses exactly one wins.
//!
//! Rotation is lossless: a retry of the just-rotated token by its client within the grace period
//! whose successor was never used (its response was lost: a dropped connection, a killed app)
//! gets a fresh pair, and the lost successor is revoked, so the family keeps one live head. A
//! reuse within the grace period after the successor *was* used is refused and nothing else
//! happens; a reuse after it is treated as theft and revokes the whole family. A family ends
//! `refresh_family_lifetime` after it began, however often it was refreshed.

use crate::audit::{AuditEvent, Event};
use crate::caller::{Caller, require_within};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::grants::Issued;
use crate::grants::token_exchange::account_claims;
use crate::jwt::TokenUse;
use crate::model::RefreshToken;
use crate::policy::family_revocation_until;
use crate::scope::{OPENID, ScopeSet};
use crate::secret::{SecretDigest, SecretKind, generate};
use crate::store::{Rotation, Successor};

pub struct Request {
    /// A bearer credential: never printed by `Debug`.
    pub refresh_token: String,
    /// RFC 6749 §6: a narrower scope for the new access token; the refresh token keeps the
    /// original one.
    pub scope: Option<ScopeSet>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken { refresh_token: <redacted> }")
    }
}

/// Why a refresh token that was found could not be used, decided from its record alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Revoked,
    Expired,
    /// Rotated less than the grace period ago: refuse, keep the family.
    ReusedWithinGrace,
    /// Rotated longer ago: refuse and revoke the family.
    ReuseDetected,
}

/// Classify a token the store reported as not active.
pub fn classify(record: &RefreshToken, now: i64, grace: i64) -> Refusal {
    if record.revoked_at.is_some() {
        Refusal::Revoked
    } else if let Some(rotated) = record.rotated_at {
        if now - rotated <= grace {
            Refusal::ReusedWithinGrace
        } else {
            Refusal::ReuseDetected
        }
    } else {
        Refusal::Expired
    }
}

#[tracing::instrument(skip_all, name = "refresh_token", fields(client_id = caller.client_id()))]
pub async fn grant(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    now: i64,
) -> Result<Issued, EngineError> {
    if SecretKind::of(&request.refresh_token) != Some(SecretKind::RefreshToken) {
        return Err(EngineError::RefreshTokenInvalid(
            "it is not a Tessera refresh token; repeat the authorization to get a new pair",
        ));
    }
    let presented = SecretDigest::of(&request.refresh_token);
    let narrowed = request.scope.filter(|s| !s.is_empty());
    if let Some(scope) = &narrowed
        && let Some(record) = engine.tokens().refresh_token(&presented).await?
        && caller.token_owner().owns(&record)
    {
        let granted = ScopeSet::parse(&record.scope).map_err(|_| EngineError::Internal)?;
        require_within(scope, &granted)?;
        // Without openid, profile and email are ordinary scopes again: only those the caller
        // may have (else narrowing would turn an OpenID Connect claim scope into an API scope).
        if !scope.contains(OPENID) {
            let (oidc, _) = scope.clone().split_openid();
            require_within(&oidc, &caller.allowed_scopes())?;
        }
    }
    let successor = generate(SecretKind::RefreshToken);
    let next = Successor {
        digest: successor.digest(),
        expires_at: now + engine.config.refresh_token_ttl,
        retry_grace: engine.config.refresh_reuse_grace,
        family_lifetime: engine.config.refresh_family_lifetime,
    };
    let record = match engine
        .tokens()
        .rotate_refresh_token(&presented, &caller.token_owner(), &next, now)
        .await?
    {
        Rotation::Rotated(record) => {
            crate::telemetry::refresh("rotated");
            record
        }
        Rotation::Replaced(record) => {
            crate::telemetry::refresh("retried");
            tracing::info!(family = %record.family_id, "refresh retried after a lost response; successor replaced");
            record
        }
        Rotation::Unknown => {
            return Err(EngineError::RefreshTokenInvalid(
                "it is unknown; repeat the authorization to get a new pair",
            ));
        }
        Rotation::WrongClient => return Err(EngineError::ClientIdMismatch),
        Rotation::NotActive(record) => {
            return Err(refuse(engine, &record, now).await?);
        }
    };
    let ttl = engine.config.ttl_within_family(
        engine.config.client_access_token_ttl,
        record.family_issued_at,
        now,
    );
    let mut claims = account_claims(engine, caller, &record, ttl, now);
    if record.grant_id.is_some() {
        // A user's own authorization: the client acts for the user, no delegation chain.
        claims.act = None;
    }
    let scope = match narrowed {
        Some(s) => {
            claims.scope = s.to_claim();
            s
        }
        None => ScopeSet::parse(&record.scope).map_err(|_| EngineError::Internal)?,
    };
    Ok(Issued {
        access_token: engine.mint(&claims),
        jti: claims.jti.clone(),
        subject: claims.sub.clone(),
        expires_in: ttl,
        refresh_token: Some(successor),
        scope,
        token_use: TokenUse::ClientAccessToken,
        id_token: None,
    })
}

async fn refuse(
    engine: &Engine,
    record: &RefreshToken,
    now: i64,
) -> Result<EngineError, EngineError> {
    if let Some(grant_id) = &record.grant_id
        && let Some(g) = engine.flows().grant_by_id(grant_id).await?
        && g.revoked_at.is_some()
    {
        return Ok(EngineError::MissingGrant);
    }
    Ok(
        match classify(record, now, engine.config.refresh_reuse_grace) {
            Refusal::Revoked => EngineError::RefreshTokenInvalid(
                "it has been revoked; repeat the authorization to get a new pair",
            ),
            Refusal::Expired => EngineError::RefreshTokenInvalid(
                "it has expired; repeat the authorization to get a new pair",
            ),
            Refusal::ReusedWithinGrace => EngineError::RefreshTokenInvalid(
                "it has already been used; use the refresh token returned by that use",
            ),
            Refusal::ReuseDetected => {
                crate::telemetry::refresh("reuse_detected");
                crate::telemetry::refresh("family_revoked");
                engine.audit(
                    AuditEvent::new(Event::RefreshReuseDetected, now)
                        .partner(&record.partner_id)
                        .client(&record.client_id)
                        .detail("refresh_family", record.family_id.as_str())
                        .detail("subject", record.subject.as_str()),
                );
                tracing::warn!(family = %record.family_id, "refresh token reuse detected; revoking the family");
                let until = family_revocation_until(now);
                engine
                    .tokens()
                    .revoke_family(&record.family_id, until, now)
                    .await?;
                engine.note_revoked(&record.family_id, until);
                EngineError::RefreshTokenInvalid(
                    "it was used twice, so as a precaution every token of this authorization is revoked; \
                 repeat the authorization to get a new pair",
                )
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RefreshToken {
        RefreshToken {
            digest: SecretDigest([0; 32]),
            family_id: "f".into(),
            partner_id: "p".into(),
            client_id: "p".into(),
            subject: "a".into(),
            account_id: Some("a".into()),
            scope: "crm".into(),
            issued_at: 0,
            expires_at: 1000,
            family_issued_at: 0,
            rotated_at: None,
            revoked_at: None,
            grant_id: None,
            actor: None,
        }
    }

    #[test]
    fn reuse_within_grace_keeps_the_family_and_after_it_revokes() {
        let mut r = record();
        r.rotated_at = Some(100);
        assert_eq!(classify(&r, 100, 30), Refusal::ReusedWithinGrace);
        assert_eq!(classify(&r, 130, 30), Refusal::ReusedWithinGrace);
        assert_eq!(classify(&r, 131, 30), Refusal::ReuseDetected);
        assert_eq!(classify(&r, 131, 0), Refusal::ReuseDetected);
    }

    #[test]
    fn revocation_wins_over_rotation_and_expiry_is_last() {
        let mut r = record();
        r.rotated_at = Some(100);
        r.revoked_at = Some(200);
        assert_eq!(classify(&r, 101, 30), Refusal::Revoked);
        let r = record();
        assert_eq!(classify(&r, 5000, 30), Refusal::Expired);
    }
}
