//! The keys as the engine uses them: parsed once into aws-lc-rs key pairs ([`Signer`],
//! [`Verifier`]) and kept, with the JWKS, in the [`KeySet`] that a rotation swaps whole.

use super::*;

enum SigningKey {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A parsed private key, ready to sign.
pub struct Signer {
    pub kid: String,
    pub alg: Alg,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({} {})", self.alg.as_str(), self.kid)
    }
}

impl Signer {
    pub(super) fn from_pkcs8(kid: &str, alg: Alg, pkcs8: &[u8]) -> Result<Signer, KeyError> {
        let malformed = |e: aws_lc_rs::error::KeyRejected| KeyError::Malformed {
            kid: kid.to_string(),
            why: e.to_string(),
        };
        let key = match alg {
            Alg::ES256 => SigningKey::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(malformed)?,
            ),
            Alg::EdDSA => SigningKey::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(malformed)?),
            Alg::RS256 => SigningKey::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(malformed)?),
        };
        Ok(Signer {
            kid: kid.to_string(),
            alg,
            key,
        })
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            SigningKey::Ec(k) => k
                .sign(&SystemRandom::new(), message)
                .expect("ECDSA signing failed")
                .as_ref()
                .to_vec(),
            SigningKey::Ed(k) => k.sign(message).as_ref().to_vec(),
            SigningKey::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .expect("RSA signing failed");
                sig
            }
        }
    }

    fn public_bytes(&self) -> Vec<u8> {
        match &self.key {
            SigningKey::Ec(k) => k.public_key().as_ref().to_vec(),
            SigningKey::Ed(k) => k.public_key().as_ref().to_vec(),
            SigningKey::Rsa(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// The public half as an RFC 7517 JWK.
    pub fn jwk(&self) -> serde_json::Value {
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match &self.key {
            SigningKey::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65]),
                       "kid": self.kid, "use": "sig", "alg": "ES256"})
            }
            SigningKey::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref()),
                       "kid": self.kid, "use": "sig", "alg": "EdDSA"})
            }
            SigningKey::Rsa(k) => {
                let pk = k.public_key();
                json!({"kty": "RSA", "n": b64(pk.modulus().big_endian_without_leading_zero()),
                       "e": b64(pk.exponent().big_endian_without_leading_zero()),
                       "kid": self.kid, "use": "sig", "alg": "RS256"})
            }
        }
    }
}

/// A parsed public key, ready to verify.
pub struct Verifier {
    pub alg: Alg,
    pub purpose: KeyUse,
    key: ParsedPublicKey,
}

impl Verifier {
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        self.key.verify_sig(message, sig).is_ok()
    }
}

/// The deployment's keys as one node sees them: the active signer of each lane and every
/// published verifier.
pub struct KeySet {
    active: Signer,
    id_token: Option<Signer>,
    verifiers: HashMap<String, Verifier>,
    jwks: serde_json::Value,
    /// The next moment a key changes state by time alone (a pending key activates, a
    /// stopped key leaves the JWKS): the set must be loaded again then.
    next_change: Option<i64>,
}

impl KeySet {
    /// Build from stored keys as they stand at `now` (see [`StoredKey::state`]): the active key
    /// signs; it, pending keys, and keys that stopped signing less than
    /// [`RETIRED_KEY_PUBLISH_SECS`] ago are published and verify; revoked keys are neither.
    pub fn load(
        keys: &[StoredKey],
        master: &MasterKey,
        now: i64,
    ) -> Result<Option<KeySet>, KeyError> {
        let mut active: Option<Signer> = None;
        let mut id_token: Option<Signer> = None;
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        for k in keys {
            let state = k.state(keys, now);
            if !state.verifies() {
                continue;
            }
            let pkcs8 = master
                .open(&k.kid, &k.private_sealed)
                .map_err(|_| KeyError::Decrypt { kid: k.kid.clone() })?;
            let signer = Signer::from_pkcs8(&k.kid, k.alg, &pkcs8)?;
            let alg: &'static dyn signature::VerificationAlgorithm = match k.alg {
                Alg::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                Alg::EdDSA => &signature::ED25519,
                Alg::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            };
            let parsed = ParsedPublicKey::new(alg, signer.public_bytes()).map_err(|e| {
                KeyError::Malformed {
                    kid: k.kid.clone(),
                    why: e.to_string(),
                }
            })?;
            verifiers.insert(
                k.kid.clone(),
                Verifier {
                    alg: k.alg,
                    purpose: k.purpose,
                    key: parsed,
                },
            );
            jwks.push(signer.jwk());
            if state == KeyState::Active {
                match k.purpose {
                    KeyUse::Access => active = Some(signer),
                    KeyUse::IdToken => id_token = Some(signer),
                }
            }
        }
        let next_change = keys.iter().filter_map(|k| k.next_change(keys, now)).min();
        Ok(active.map(|active| KeySet {
            active,
            id_token,
            verifiers,
            jwks: json!({ "keys": jwks }),
            next_change,
        }))
    }

    /// The active access-token signer.
    pub fn signer(&self) -> &Signer {
        &self.active
    }

    /// The active ID-token signer, once the engine has made one (see [`KeyUse`]).
    pub fn id_token_signer(&self) -> Option<&Signer> {
        self.id_token.as_ref()
    }

    /// Whether a key changed state by time alone since this set was loaded (reload it).
    pub fn stale_at(&self, now: i64) -> bool {
        self.next_change.is_some_and(|t| t <= now)
    }

    pub fn verifier(&self, kid: &str) -> Option<&Verifier> {
        self.verifiers.get(kid)
    }

    /// `{"keys": [...]}` as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

/// Shared handle to the current key set, swapped atomically when keys change.
pub type SharedKeySet = Arc<arc_swap::ArcSwap<KeySet>>;
