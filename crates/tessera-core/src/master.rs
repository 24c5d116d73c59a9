//! The deployment's master key: one 256-bit secret that every node of a deployment shares
//! (`TESSERA_MASTER_KEY`, or a file). It seals what is kept secret at rest (private signing
//! keys, stored admin answers) with AES-256-GCM, bound to a context, and derives the keys of
//! single purposes (page bindings, `Idempotency-Key` fingerprints) so that every node agrees.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use crate::secret::random_bytes;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key must be 32 bytes, given as 64 hex digits or base64 ({0})")]
    Malformed(&'static str),
}

/// A sealed value that did not open: another master key, another context, or altered bytes.
#[derive(Debug, thiserror::Error)]
#[error("the sealed value does not open with this master key and context")]
pub struct Unsealed;

/// The deployment's 256-bit key. `Debug` never prints it.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    pub fn generate() -> MasterKey {
        MasterKey(Zeroizing::new(random_bytes::<32>()))
    }

    /// Parse 64 hex digits or standard/url-safe base64 of exactly 32 bytes.
    pub fn parse(text: &str) -> Result<MasterKey, MasterKeyError> {
        let t = text.trim();
        let bytes: Zeroizing<Vec<u8>> = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())
        {
            Zeroizing::new(
                (0..32)
                    .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0))
                    .collect(),
            )
        } else {
            Zeroizing::new(
                STANDARD
                    .decode(t)
                    .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
                    .map_err(|_| MasterKeyError::Malformed("not hex or base64"))?,
            )
        };
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| MasterKeyError::Malformed("wrong length"))?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    /// A 256-bit key for one purpose, derived from this one (HMAC-SHA256 of the label), the same
    /// on every node that shares the master key.
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0[..]);
        let tag = aws_lc_rs::hmac::sign(&key, label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(tag.as_ref());
        out
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.iter().map(|b| format!("{b:02x}")).collect())
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, &self.0[..]).expect("32-byte key"))
    }

    /// AES-256-GCM under the master key, bound to `context` (associated data): a private key
    /// to its `kid`, a stored answer to its request. Only [`MasterKey::open`] with the same
    /// context opens it.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = random_bytes::<12>();
        let mut buf = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM seal cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    /// What [`MasterKey::seal`] sealed with `context`; an error when the context, the key or a
    /// byte differs.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Unsealed> {
        if sealed.len() < 12 + 16 {
            return Err(Unsealed);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[..12]).map_err(|_| Unsealed)?;
        let mut buf = Zeroizing::new(sealed[12..].to_vec());
        let len = self
            .aead()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| Unsealed)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_parses_hex_and_base64() {
        let m = MasterKey::generate();
        let hex = m.to_hex();
        assert!(MasterKey::parse(&hex).is_ok());
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert!(MasterKey::parse("short").is_err());
        assert_eq!(format!("{m:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let m = MasterKey::generate();
        let sealed = m.seal("kid-1", b"secret");
        assert_eq!(&m.open("kid-1", &sealed).unwrap()[..], b"secret");
        assert!(m.open("kid-2", &sealed).is_err());
        assert!(MasterKey::generate().open("kid-1", &sealed).is_err());
        assert!(m.open("kid-1", &sealed[..20]).is_err());
    }
}
