//! Token revocation (RFC 7009): refresh tokens with their whole family, access and machine
//! tokens by `jti`. Unknown tokens are not an error (§2.2); another caller's token is refused: a
//! client revokes only tokens issued to itself (§2.1), a partner any of its organisation's.

use crate::audit::{AuditEvent, Event};
use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::jwt::looks_like_jwt;
use crate::policy::family_revocation_until;
use crate::secret::{SecretDigest, SecretKind};

impl Engine {
    #[tracing::instrument(skip_all, name = "revoke", fields(client_id = caller.client_id()))]
    pub async fn revoke(&self, caller: &Caller, token: &str, now: i64) -> Result<(), EngineError> {
        // Each revocation may write a revocation entry that every node keeps until the token's
        // expiry: it counts against the caller's token-request budget, so no client can grow
        // the revoked set faster than it can mint tokens.
        self.check_rate(caller.rate_key()).await?;
        if SecretKind::of(token) == Some(SecretKind::RefreshToken) {
            let Some(record) = self
                .tokens()
                .refresh_token(&SecretDigest::of(token))
                .await?
            else {
                return Ok(());
            };
            if !caller.token_owner().owns(&record) {
                return Err(EngineError::NotPartnersResource("token"));
            }
            let until = family_revocation_until(now);
            self.tokens()
                .revoke_family(&record.family_id, until, now)
                .await?;
            self.note_revoked(&record.family_id, until);
            crate::telemetry::refresh("family_revoked");
            self.audit(
                AuditEvent::new(Event::TokenRevoked, now)
                    .partner(&record.partner_id)
                    .client(&record.client_id)
                    .detail("refresh_family", record.family_id.as_str())
                    .detail("subject", record.subject.as_str()),
            );
            tracing::info!("refresh token family revoked");
            return Ok(());
        }
        if !looks_like_jwt(token) {
            return Ok(());
        }
        let Ok(claims) = self.verify_token_ignoring_expiry(token) else {
            return Ok(());
        };
        if !caller.holds_token(&claims.client_id, claims.partner_id.as_deref()) {
            return Err(EngineError::NotPartnersResource("token"));
        }
        if claims.exp > now && !self.is_revoked(&claims) {
            self.tokens().revoke_jti(&claims.jti, claims.exp).await?;
            self.note_revoked(&claims.jti, claims.exp);
            let mut event = AuditEvent::new(Event::TokenRevoked, now)
                .client(&claims.client_id)
                .detail("jti", claims.jti.as_str())
                .detail("subject", claims.sub.as_str());
            if let Some(p) = &claims.partner_id {
                event = event.partner(p);
            }
            self.audit(event);
            tracing::info!("access token revoked");
        }
        Ok(())
    }
}
