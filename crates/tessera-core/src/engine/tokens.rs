//! Minting and verifying access tokens, with the verified-token cache and the revoked set.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Engine;
use crate::error::EngineError;
use crate::jwt::{self, Claims, JwtError};

impl Engine {
    pub(crate) fn mint(&self, claims: &Claims) -> String {
        jwt::encode(&self.keys.load(), claims)
    }

    /// The user an `id_token_hint` names (OpenID Connect Core §3.1.2.1): an ID token this
    /// deployment issued to `client_id`, expired or not; `None` when it is not one.
    pub fn id_token_hint_subject(&self, hint: &str, client_id: &str) -> Option<String> {
        let keys = self.keys.load();
        crate::jwt::decode_id_token(&keys, hint, &self.config.issuer)
            .ok()
            .filter(|c| c.aud == client_id)
            .map(|c| c.sub)
    }

    /// Sign an OpenID Connect ID token with the ID-token key lane's active key.
    pub(crate) fn mint_id_token(&self, claims: &jwt::IdTokenClaims) -> Result<String, EngineError> {
        let keys = self.keys.load();
        let signer = keys.id_token_signer().ok_or_else(|| {
            tracing::error!("no active ID-token key; `tessera keys rotate --id-token` makes one");
            EngineError::Unavailable
        })?;
        Ok(jwt::encode_id_token(signer, claims))
    }

    /// Verify a presented access token: signature, issuer, expiry, and revocation.
    pub fn verify_token(&self, token: &str, now: i64) -> Result<Claims, EngineError> {
        let key = token_digest(token);
        let cached = self.verified.get(&key);
        crate::telemetry::cache("token", cached.is_some());
        let claims = match cached {
            Some(c) => {
                if c.exp <= now {
                    return Err(EngineError::TokenInvalid(JwtError::Expired));
                }
                c
            }
            None => {
                let c = Arc::new(
                    jwt::decode(&self.keys.load(), token, &self.config.issuer, now)
                        .map_err(jwt_error)?,
                );
                self.verified.insert(key, Arc::clone(&c));
                c
            }
        };
        if self.is_revoked(&claims) {
            return Err(EngineError::TokenUnknownOrRevoked);
        }
        if claims
            .partner_id
            .as_ref()
            .is_some_and(|p| self.inactive_partners.load().contains(p))
        {
            return Err(EngineError::PartnerInactive);
        }
        if self.disabled_clients.load().contains(&claims.client_id) {
            return Err(EngineError::TokenUnknownOrRevoked);
        }
        Ok((*claims).clone())
    }

    /// Signature and issuer only (revocation of expired tokens).
    pub(crate) fn verify_token_ignoring_expiry(&self, token: &str) -> Result<Claims, EngineError> {
        jwt::decode_ignoring_expiry(&self.keys.load(), token, &self.config.issuer)
            .map_err(jwt_error)
    }

    pub(crate) fn is_revoked(&self, claims: &Claims) -> bool {
        self.revoked.contains_key(&claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| self.revoked.contains_key(sid))
            || claims
                .exchanged_from
                .iter()
                .any(|jti| self.revoked.contains_key(jti))
    }

    pub(crate) fn note_revoked(&self, id: &str, until: i64) {
        self.revoked.insert(id.to_string(), until);
    }
}

fn token_digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn jwt_error(e: JwtError) -> EngineError {
    match e {
        JwtError::NotOurs => EngineError::TokenUnknownOrRevoked,
        other => EngineError::TokenInvalid(other),
    }
}

impl Engine {
    /// Mark a partner inactive (every token of theirs stops verifying) or active again.
    pub(crate) fn set_partner_inactive(&self, partner_id: &str, inactive: bool) {
        set_membership(&self.inactive_partners, partner_id, inactive);
    }

    /// Mark a client disabled (every token issued to it stops verifying) or enabled again.
    pub(crate) fn set_client_disabled(&self, client_id: &str, disabled: bool) {
        set_membership(&self.disabled_clients, client_id, disabled);
    }
}

/// Add `id` to or remove it from a read-mostly set, by read-copy-update: concurrent changes of
/// different ids are never lost.
fn set_membership(set: &ArcSwap<HashSet<String>>, id: &str, member: bool) {
    if set.load().contains(id) == member {
        return;
    }
    set.rcu(|current| {
        let mut next = (**current).clone();
        if member {
            next.insert(id.to_string());
        } else {
            next.remove(id);
        }
        next
    });
}
