//! Token introspection (RFC 7662). A token is active only if Tessera issued it, it has not
//! expired or been revoked, and it was issued to the calling client: a client learns nothing about
//! other clients' tokens, its own organisation's included, not even that they exist.

use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::jwt::{Claims, looks_like_jwt};
use crate::model::RefreshToken;
use crate::secret::{SecretDigest, SecretKind};

#[derive(Debug)]
pub enum Introspection {
    Inactive,
    Access(Claims),
    Refresh(RefreshToken),
}

impl Engine {
    #[tracing::instrument(skip_all, name = "introspect", fields(client_id = caller.client_id()))]
    pub async fn introspect(
        &self,
        caller: &Caller,
        token: &str,
        now: i64,
    ) -> Result<Introspection, EngineError> {
        if SecretKind::of(token) == Some(SecretKind::RefreshToken) {
            let record = self
                .tokens()
                .refresh_token(&SecretDigest::of(token))
                .await?;
            return Ok(match record {
                Some(r)
                    if caller.token_owner().owns(&r)
                        && r.rotated_at.is_none()
                        && r.revoked_at.is_none()
                        && r.expires_at > now =>
                {
                    Introspection::Refresh(r)
                }
                _ => Introspection::Inactive,
            });
        }
        if !looks_like_jwt(token) {
            return Ok(Introspection::Inactive);
        }
        Ok(match self.verify_token(token, now) {
            Ok(c) if caller.holds_token(&c.client_id, c.partner_id.as_deref()) => {
                Introspection::Access(c)
            }
            _ => Introspection::Inactive,
        })
    }
}
