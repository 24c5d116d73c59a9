//! Signing keys: generation, encryption at rest, the in-memory key set, and JWKS.
//!
//! Keys come in two lanes ([`KeyUse`]): access-token keys (the configured algorithm; fast, on
//! the hot path) and OpenID Connect ID-token keys (always RS256, which OpenID Connect Discovery
//! requires every provider to offer and every relying party accepts by default; an ID token is
//! signed once per sign-in, so RSA's cost does not matter). Each lane has one active key at a
//! time and rotates on its own; both are published in the one JWKS.
//!
//! This module generates keys and knows each one's state at a given time; `set` holds them parsed
//! for use. Private keys are parsed once into aws-lc-rs key pairs and kept in [`KeySet`];
//! re-parsing a PKCS#8 document per signature (as general JOSE crates do) doubles ES256 cost and
//! makes RS256 cost 1.5 ms. At rest a private key is sealed with AES-256-GCM under the deployment's
//! master key ([`crate::master`]), with the `kid` as associated data so that a sealed key cannot be
//! swapped between rows.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::master::MasterKey;

mod set;

pub use set::{KeySet, SharedKeySet, Signer, Verifier};

/// How long a retired key stays published: every access token it signed has expired by then
/// (access-token lifetimes are capped at [`crate::policy::MAX_ACCESS_TOKEN_TTL`]), plus five
/// minutes: a node keeps signing with a superseded key until its next housekeeping (up to a
/// minute after the handover), and clocks drift.
pub const RETIRED_KEY_PUBLISH_SECS: i64 = crate::policy::MAX_ACCESS_TOKEN_TTL + 300;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alg {
    ES256,
    EdDSA,
    RS256,
}

impl Alg {
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::EdDSA => "EdDSA",
            Alg::RS256 => "RS256",
        }
    }
}

impl std::str::FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Alg::ES256),
            "EdDSA" => Ok(Alg::EdDSA),
            "RS256" => Ok(Alg::RS256),
            other => Err(format!(
                "unknown signing algorithm {other:?}: use ES256, EdDSA or RS256"
            )),
        }
    }
}

/// Which tokens a key signs: its lane. Access-token verification accepts only access keys, so
/// an ID token can never pass for an access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyUse {
    Access,
    IdToken,
}

impl KeyUse {
    pub const ALL: [KeyUse; 2] = [KeyUse::Access, KeyUse::IdToken];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyUse::Access => "access",
            KeyUse::IdToken => "id_token",
        }
    }

    pub fn parse(s: &str) -> Option<KeyUse> {
        match s {
            "access" => Some(KeyUse::Access),
            "id_token" => Some(KeyUse::IdToken),
            _ => None,
        }
    }

    /// The algorithm of the lane's keys, given the configured access-token algorithm.
    pub fn alg(self, access_alg: Alg) -> Alg {
        match self {
            KeyUse::Access => access_alg,
            KeyUse::IdToken => Alg::RS256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "signing key {kid} could not be decrypted: is this the master key the database was created with?"
    )]
    Decrypt { kid: String },
    #[error("signing key {kid} is malformed: {why}")]
    Malformed { kid: String, why: String },
    #[error("key generation failed")]
    Generate,
}

/// A signing key as the store keeps it: public JWK in clear, private key sealed.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: Alg,
    /// Its lane: a key supersedes only keys of its own lane.
    pub purpose: KeyUse,
    pub public_jwk: serde_json::Value,
    pub private_sealed: Vec<u8>,
    pub created_at: i64,
    /// Set when an operator rotated it out (`tessera keys rotate`).
    pub retired_at: Option<i64>,
    /// When it starts signing (published before, so that caches of the JWKS know it first);
    /// `None`: from its creation.
    pub activates_at: Option<i64>,
    /// Set when it was revoked (compromised): no longer published, its tokens refused.
    pub revoked_at: Option<i64>,
}

/// Where a key stands at a given time; computed from its times, so no node has to flip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs (exactly one key of each lane at a time).
    Active,
    /// Published in the JWKS; signs from its activation.
    Pending,
    /// Stopped signing (superseded or retired); published while its tokens may live.
    Published,
    /// Stopped signing long enough ago that no token of its can still be valid.
    Expired,
    /// Compromised: neither published nor trusted.
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Pending => "pending",
            KeyState::Published => "published",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }

    /// Whether the JWKS lists it and tokens it signed verify.
    pub fn verifies(self) -> bool {
        matches!(
            self,
            KeyState::Active | KeyState::Pending | KeyState::Published
        )
    }
}

impl StoredKey {
    /// When it started, or starts, signing.
    pub fn activation(&self) -> i64 {
        self.activates_at.unwrap_or(self.created_at)
    }

    /// Its state at `now` among `all` the keys.
    pub fn state(&self, all: &[StoredKey], now: i64) -> KeyState {
        if self.revoked_at.is_some() {
            return KeyState::Revoked;
        }
        if self.activation() > now {
            return KeyState::Pending;
        }
        match self.ended_at(all, now) {
            None => KeyState::Active,
            Some(e) if e + RETIRED_KEY_PUBLISH_SECS > now => KeyState::Published,
            Some(_) => KeyState::Expired,
        }
    }

    /// When its state next changes by time alone, if it does: a pending key's activation, a
    /// stopped key's end of publication.
    fn next_change(&self, all: &[StoredKey], now: i64) -> Option<i64> {
        match self.state(all, now) {
            KeyState::Pending => Some(self.activation()),
            KeyState::Published => self
                .ended_at(all, now)
                .map(|e| e + RETIRED_KEY_PUBLISH_SECS),
            _ => None,
        }
    }

    /// When it stopped signing at `now`: when it was retired, or else when a key that activated
    /// after it (or at the same moment, but was created later) superseded it.
    fn ended_at(&self, all: &[StoredKey], now: i64) -> Option<i64> {
        let superseded = all
            .iter()
            .filter(|o| o.kid != self.kid && o.purpose == self.purpose && o.signed(now))
            .filter(|o| {
                (o.activation(), o.created_at, &o.kid)
                    > (self.activation(), self.created_at, &self.kid)
            })
            .map(StoredKey::activation)
            .min();
        // The earlier of the two: a later retirement or revocation of another key cannot move
        // back the moment this one stopped (and so cannot publish an expired key again).
        match (self.retired_at, superseded) {
            (Some(r), Some(s)) => Some(r.min(s)),
            (r, s) => r.or(s),
        }
    }

    /// Whether it signed at some time up to `now`: activated, and not stopped (retired or
    /// revoked) before its activation. A key that signed supersedes older ones for good, even
    /// once it is retired or revoked itself.
    fn signed(&self, now: i64) -> bool {
        let activation = self.activation();
        let stopped = [self.retired_at, self.revoked_at]
            .into_iter()
            .flatten()
            .min();
        activation <= now && stopped.is_none_or(|s| s > activation)
    }
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("purpose", &self.purpose)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Generate a new access-token key pair and seal it for storage.
pub fn generate_key(alg: Alg, master: &MasterKey, now: i64) -> Result<StoredKey, KeyError> {
    generate_key_for(KeyUse::Access, alg, master, now)
}

/// Generate a new key pair of a lane and seal it for storage.
pub fn generate_key_for(
    purpose: KeyUse,
    alg: Alg,
    master: &MasterKey,
    now: i64,
) -> Result<StoredKey, KeyError> {
    let kid = uuid::Uuid::now_v7().simple().to_string();
    let pkcs8: Zeroizing<Vec<u8>> = match alg {
        Alg::ES256 => Zeroizing::new(
            EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|_| KeyError::Generate)?
            .as_ref()
            .to_vec(),
        ),
        Alg::EdDSA => Zeroizing::new(
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
        ),
        Alg::RS256 => Zeroizing::new(
            RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| KeyError::Generate)?
                .as_der()
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
        ),
    };
    let signer = Signer::from_pkcs8(&kid, alg, &pkcs8)?;
    Ok(StoredKey {
        public_jwk: signer.jwk(),
        private_sealed: master.seal(&kid, &pkcs8),
        kid,
        alg,
        purpose,
        created_at: now,
        retired_at: None,
        activates_at: None,
        revoked_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_key_stays_expired_after_a_rotation_or_a_revocation() {
        // Found by an attack: A was handed over to B on schedule long ago (expired), B to C;
        // a manual rotation then stamped A retired "now", and revoking B moved A's end to C's
        // activation: either way A was published and trusted again.
        const DAY: i64 = 86_400;
        let now = 100 * DAY;
        let m = MasterKey::generate();
        let mut a = generate_key(Alg::ES256, &m, now - 10 * DAY).unwrap();
        let mut b = generate_key(Alg::ES256, &m, now - 5 * DAY).unwrap();
        b.activates_at = Some(now - 4 * DAY);
        let mut c = generate_key(Alg::ES256, &m, now - 2 * DAY).unwrap();
        c.activates_at = Some(now - 3_600);
        let keys = [a.clone(), b.clone(), c.clone()];
        assert_eq!(a.state(&keys, now), KeyState::Expired);
        a.retired_at = Some(now);
        let retired = [a.clone(), b.clone(), c.clone()];
        assert_eq!(
            a.state(&retired, now),
            KeyState::Expired,
            "after a rotation"
        );
        a.retired_at = None;
        b.revoked_at = Some(now);
        let revoked = [a.clone(), b.clone(), c.clone()];
        assert_eq!(
            a.state(&revoked, now),
            KeyState::Expired,
            "after revoking B"
        );
        assert_eq!(c.state(&revoked, now), KeyState::Active);
        // A key revoked before it ever signed supersedes nothing.
        c.revoked_at = Some(now - 7_200);
        let never = [a.clone(), b.clone(), c];
        assert_eq!(b.state(&never, now), KeyState::Revoked);
        let mut d = a.clone();
        d.kid = "d".into();
        d.created_at = now - DAY;
        d.activates_at = Some(now - DAY);
        let mut e = a;
        e.kid = "e".into();
        e.created_at = now - 7_300;
        e.activates_at = Some(now - 3_600);
        e.revoked_at = Some(now - 7_200);
        assert_eq!(d.state(&[d.clone(), e], now), KeyState::Active);
    }

    #[test]
    fn a_scheduled_key_is_published_before_it_signs_and_the_old_one_after() {
        let m = MasterKey::generate();
        let old = generate_key(Alg::ES256, &m, 0).unwrap();
        let mut next = generate_key(Alg::ES256, &m, 1_000).unwrap();
        next.activates_at = Some(5_000);
        let keys = [old.clone(), next.clone()];
        let states = |now| {
            (
                old.state(&keys, now).as_str(),
                next.state(&keys, now).as_str(),
            )
        };
        assert_eq!(states(4_999), ("active", "pending"));
        assert_eq!(states(5_000), ("published", "active"));
        assert_eq!(
            states(5_000 + RETIRED_KEY_PUBLISH_SECS),
            ("expired", "active")
        );
        // The JWKS announces the pending key while the old one signs.
        let set = KeySet::load(&keys, &m, 4_999).unwrap().unwrap();
        assert_eq!(set.signer().kid, old.kid);
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
        let set = KeySet::load(&keys, &m, 5_000).unwrap().unwrap();
        assert_eq!(set.signer().kid, next.kid);
        // A revoked key is neither published nor a signer, and the key it superseded is not
        // revived (`tessera keys revoke` makes a new key active first).
        let mut revoked = next.clone();
        revoked.revoked_at = Some(6_000);
        let keys = [old.clone(), revoked];
        assert!(KeySet::load(&keys, &m, 6_000).unwrap().is_none());
        assert_eq!(keys[0].state(&keys, 6_000), KeyState::Published);
        assert_eq!(keys[1].state(&keys, 6_000), KeyState::Revoked);
    }

    #[test]
    fn sealed_keys_open_only_with_their_master_key_and_kid() {
        let m = MasterKey::generate();
        let k = generate_key(Alg::ES256, &m, 100).unwrap();
        assert!(
            KeySet::load(std::slice::from_ref(&k), &m, 100)
                .unwrap()
                .is_some()
        );
        let other = MasterKey::generate();
        assert!(matches!(
            KeySet::load(std::slice::from_ref(&k), &other, 100),
            Err(KeyError::Decrypt { .. })
        ));
        let mut swapped = k.clone();
        swapped.kid = "other".into();
        assert!(KeySet::load(&[swapped], &m, 100).is_err());
    }

    #[test]
    fn every_algorithm_signs_and_verifies() {
        let m = MasterKey::generate();
        for alg in [Alg::ES256, Alg::EdDSA, Alg::RS256] {
            let k = generate_key(alg, &m, 0).unwrap();
            let set = KeySet::load(&[k], &m, 0).unwrap().unwrap();
            let sig = set.signer().sign(b"hello");
            let v = set.verifier(&set.signer().kid).unwrap();
            assert!(v.verify(b"hello", &sig), "{alg:?}");
            assert!(!v.verify(b"hullo", &sig), "{alg:?}");
            assert_eq!(set.jwks()["keys"][0]["alg"], alg.as_str());
        }
    }

    #[test]
    fn rotation_keeps_the_old_key_published_until_its_tokens_expire() {
        let m = MasterKey::generate();
        let mut old = generate_key(Alg::ES256, &m, 0).unwrap();
        let new = generate_key(Alg::ES256, &m, 10).unwrap();
        old.retired_at = Some(10);
        let keys = [old.clone(), new.clone()];
        let set = KeySet::load(&keys, &m, 10).unwrap().unwrap();
        assert_eq!(set.signer().kid, new.kid);
        assert!(set.verifier(&old.kid).is_some());
        let later = 10 + RETIRED_KEY_PUBLISH_SECS;
        let set = KeySet::load(&keys, &m, later).unwrap().unwrap();
        assert!(set.verifier(&old.kid).is_none());
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn each_lane_has_its_own_active_key() {
        let m = MasterKey::generate();
        let access = generate_key(Alg::ES256, &m, 0).unwrap();
        let id = generate_key_for(KeyUse::IdToken, Alg::RS256, &m, 10).unwrap();
        let keys = [access.clone(), id.clone()];
        // A newer ID-token key does not supersede the access key, nor the reverse.
        assert_eq!(access.state(&keys, 20), KeyState::Active);
        assert_eq!(id.state(&keys, 20), KeyState::Active);
        let set = KeySet::load(&keys, &m, 20).unwrap().unwrap();
        assert_eq!(set.signer().kid, access.kid);
        assert_eq!(set.id_token_signer().unwrap().kid, id.kid);
        assert_eq!(set.verifier(&id.kid).unwrap().purpose, KeyUse::IdToken);
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
        // A second access key supersedes only the first.
        let next = generate_key(Alg::ES256, &m, 30).unwrap();
        let keys = [access.clone(), id.clone(), next.clone()];
        assert_eq!(access.state(&keys, 40), KeyState::Published);
        assert_eq!(id.state(&keys, 40), KeyState::Active);
        assert_eq!(next.state(&keys, 40), KeyState::Active);
    }
}
