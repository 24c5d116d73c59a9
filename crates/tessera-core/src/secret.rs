//! Secrets that Tessera generates (refresh tokens, client secrets, partner API tokens, …) and the
//! digests it stores instead of them.
//!
//! Every generated secret is 32 random bytes (256 bits) rendered as base64url after a short,
//! type-naming prefix (`trt_` for a refresh token, …), so that a secret scanner or a revocation
//! endpoint can tell the kind of a leaked string without a database look-up. Only the SHA-256
//! digest is ever stored: a high-entropy secret needs no slow hash, and SHA-256 makes the look-up a
//! single indexed equality.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The kinds of secret Tessera mints, each with its own visible prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    RefreshToken,
    PartnerToken,
    ClientSecret,
    ClientUserToken,
    AuthorizationCode,
    /// A browser session on the authorization pages (cookie value).
    Session,
    /// An operator's token for the admin HTTP API.
    AdminToken,
}

impl SecretKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            SecretKind::RefreshToken => "trt_",
            SecretKind::PartnerToken => "tpt_",
            SecretKind::ClientSecret => "tcs_",
            SecretKind::ClientUserToken => "tcu_",
            SecretKind::AuthorizationCode => "tac_",
            SecretKind::Session => "tss_",
            SecretKind::AdminToken => "tat_",
        }
    }

    /// Which kind a presented string claims to be, by its prefix.
    pub fn of(presented: &str) -> Option<SecretKind> {
        [
            SecretKind::RefreshToken,
            SecretKind::PartnerToken,
            SecretKind::ClientSecret,
            SecretKind::ClientUserToken,
            SecretKind::AuthorizationCode,
            SecretKind::Session,
            SecretKind::AdminToken,
        ]
        .into_iter()
        .find(|k| presented.starts_with(k.prefix()))
    }
}

/// A secret in clear, held only between minting and the response that shows it once.
/// `Debug` never prints it and the memory is wiped on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Mint a new 256-bit secret of the given kind.
pub fn generate(kind: SecretKind) -> Secret {
    let bytes = random_bytes::<32>();
    let mut s = String::with_capacity(4 + 43);
    s.push_str(kind.prefix());
    URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
    Secret(Zeroizing::new(s))
}

/// A new record id: a UUIDv7 (unique, time-ordered, not secret).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    SystemRandom::new()
        .fill(&mut buf)
        .expect("the operating system's random source failed");
    buf
}

/// SHA-256 of a secret: what the stores keep and index.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    /// HMAC-SHA256 under `key` of the parts, each preceded by its length (so that no two
    /// splits of the same bytes collide): a fingerprint of a request that may hold a password,
    /// which without the key no one can test guesses against.
    pub fn keyed_parts(key: &[u8; 32], parts: &[&[u8]]) -> Self {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
        let mut c = aws_lc_rs::hmac::Context::with_key(&key);
        for p in parts {
            c.update(&(p.len() as u64).to_be_bytes());
            c.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(c.sign().as_ref());
        SecretDigest(out)
    }

    pub fn of(secret: &str) -> Self {
        let d = digest::digest(&digest::SHA256, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        SecretDigest(out)
    }

    /// Constant-time equality, for the rare places that compare digests outside an index.
    pub fn ct_eq(&self, other: &SecretDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(SecretDigest(out))
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest of a high-entropy secret is not itself secret, but a short form is enough.
        write!(f, "SecretDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// A keyed hash used as a cache key for a credential pair, so that no cache ever holds a clear
/// password and a memory dump does not give an offline-guessable digest either (the key lives
/// only in this process).
pub struct CacheKeyer(hmac::Key);

impl CacheKeyer {
    pub fn new() -> Self {
        CacheKeyer(hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()))
    }

    pub fn key(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

impl Default for CacheKeyer {
    fn default() -> Self {
        Self::new()
    }
}

/// Constant-time comparison of two byte strings of possibly different lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_prefixed_long_and_distinct() {
        let a = generate(SecretKind::RefreshToken);
        let b = generate(SecretKind::RefreshToken);
        assert!(a.expose().starts_with("trt_"));
        assert_eq!(a.expose().len(), 4 + 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(SecretKind::of(a.expose()), Some(SecretKind::RefreshToken));
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn digest_round_trips_through_hex() {
        let d = SecretDigest::of("abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(SecretDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(SecretDigest::from_hex("zz"), None);
    }

    #[test]
    fn cache_keys_separate_fields() {
        let k = CacheKeyer::new();
        assert_ne!(k.key(&[b"ab", b"c"]), k.key(&[b"a", b"bc"]));
        assert_eq!(k.key(&[b"a", b"b"]), k.key(&[b"a", b"b"]));
    }
}
