//! JWT access tokens (RFC 9068 profile, `typ: at+jwt`): minting and verification against the
//! deployment's own [`KeySet`]; and OpenID Connect ID tokens (`typ: JWT`), minted with the
//! ID-token key lane and never accepted as access tokens.
//!
//! Verification is deliberately narrow: only compact JWS, only the three algorithms Tessera signs
//! with, the `alg` in the header must equal the algorithm of the key named by `kid` (no `none`,
//! no algorithm confusion), and the issuer must be this deployment.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::keys::{KeySet, KeyUse, Signer};
use crate::policy::MAX_TOKEN_LEN as MAX_JWT_LEN;

/// Clock skew tolerated on `iat`.
const LEEWAY_SECS: i64 = 60;

pub use tessera_proto::claims::{Actor, Claims, TokenUse};

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'static str,
    kid: &'a str,
}

#[derive(Deserialize)]
struct ParsedHeader {
    alg: String,
    kid: Option<String>,
}

/// Why a presented JWT was refused. The first three mean "invalid or expired"; the last means
/// "well-formed, but not one of ours".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was not issued by this server")]
    NotOurs,
}

/// The claims of an OpenID Connect ID token (Core §2, §3.1.3.6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    /// The client the sign-in was for.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The left half of the SHA-256 of the access token issued with it, base64url.
    pub at_hash: String,
    pub sid: String,
}

/// `at_hash` of an access token for an RS256 ID token (Core §3.1.3.6): the left half of its
/// SHA-256, base64url.
pub fn at_hash(access_token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// Sign an ID token with the active ID-token key.
pub fn encode_id_token(signer: &Signer, claims: &IdTokenClaims) -> String {
    sign(signer, "JWT", claims)
}

/// Sign `claims` with the active key of `keys`.
pub fn encode(keys: &KeySet, claims: &Claims) -> String {
    sign(keys.signer(), "at+jwt", claims)
}

fn sign(signer: &Signer, typ: &'static str, claims: &impl Serialize) -> String {
    let header = serde_json::to_vec(&Header {
        alg: signer.alg.as_str(),
        typ,
        kid: &signer.kid,
    })
    .expect("header serializes");
    let body = serde_json::to_vec(claims).expect("claims serialize");
    let mut token = String::with_capacity(64 + body.len() * 4 / 3 + 100);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&body, &mut token);
    let sig = signer.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&sig, &mut token);
    token
}

/// Verify signature, issuer and expiry; return the claims.
pub fn decode(keys: &KeySet, token: &str, issuer: &str, now: i64) -> Result<Claims, JwtError> {
    let claims = decode_ignoring_expiry(keys, token, issuer)?;
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if claims.iat > now + LEEWAY_SECS {
        return Err(JwtError::Malformed);
    }
    Ok(claims)
}

/// Verify signature and issuer only: for revocation, where an expired token is still ours.
pub fn decode_ignoring_expiry(
    keys: &KeySet,
    token: &str,
    issuer: &str,
) -> Result<Claims, JwtError> {
    let claims: Claims = verified_payload(keys, token, KeyUse::Access)?;
    if claims.iss != issuer {
        return Err(JwtError::NotOurs);
    }
    Ok(claims)
}

/// An ID token this deployment issued (signature by an ID-token key, `iss`), expired or not:
/// what an `id_token_hint` must be (OpenID Connect Core §3.1.2.1).
pub fn decode_id_token(
    keys: &KeySet,
    token: &str,
    issuer: &str,
) -> Result<IdTokenClaims, JwtError> {
    let claims: IdTokenClaims = verified_payload(keys, token, KeyUse::IdToken)?;
    if claims.iss != issuer {
        return Err(JwtError::NotOurs);
    }
    Ok(claims)
}

/// The claims of a compact JWS whose signature verifies with a published key of `lane`, in
/// that key's algorithm.
fn verified_payload<T: serde::de::DeserializeOwned>(
    keys: &KeySet,
    token: &str,
    lane: KeyUse,
) -> Result<T, JwtError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(b), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let header: ParsedHeader = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let kid = header.kid.ok_or(JwtError::NotOurs)?;
    let verifier = keys
        .verifier(&kid)
        .filter(|v| v.purpose == lane)
        .ok_or(JwtError::NotOurs)?;
    if header.alg != verifier.alg.as_str() {
        return Err(JwtError::BadSignature);
    }
    let signed_len = h.len() + 1 + b.len();
    if !verifier.verify(&token.as_bytes()[..signed_len], &sig) {
        return Err(JwtError::BadSignature);
    }
    URL_SAFE_NO_PAD
        .decode(b)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtError::Malformed)
}

/// Whether a string has the shape of a compact JWS (three base64url parts), without verifying.
pub fn looks_like_jwt(token: &str) -> bool {
    token.len() <= MAX_JWT_LEN
        && token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Alg, generate_key, generate_key_for};
    use crate::master::MasterKey;

    fn keyset(alg: Alg) -> KeySet {
        let m = MasterKey::generate();
        KeySet::load(&[generate_key(alg, &m, 0).unwrap()], &m, 0)
            .unwrap()
            .unwrap()
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "https://as.example".into(),
            sub: "p1".into(),
            aud: "https://as.example".into(),
            exp: now + 100,
            iat: now,
            jti: "j1".into(),
            client_id: "p1".into(),
            scope: "crm".into(),
            token_use: TokenUse::MachineToken,
            partner_id: Some("p1".into()),
            org_code: None,
            account_id: None,
            role: None,
            act: None,
            sid: None,
            exchanged_from: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_expiry_with_explicit_now() {
        let keys = keyset(Alg::ES256);
        let now = 1_700_000_000;
        let t = encode(&keys, &claims(now));
        assert!(looks_like_jwt(&t));
        assert_eq!(
            decode(&keys, &t, "https://as.example", now + 99).unwrap(),
            claims(now)
        );
        assert_eq!(
            decode(&keys, &t, "https://as.example", now + 100),
            Err(JwtError::Expired)
        );
        assert!(decode_ignoring_expiry(&keys, &t, "https://as.example").is_ok());
        assert_eq!(
            decode(&keys, &t, "https://other.example", now),
            Err(JwtError::NotOurs)
        );
    }

    #[test]
    fn tampering_and_foreign_keys_are_refused() {
        let keys = keyset(Alg::EdDSA);
        let t = encode(&keys, &claims(0));
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut forged = claims(0);
        forged.sub = "p2".into();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        parts[1] = &body;
        assert_eq!(
            decode(&keys, &parts.join("."), "https://as.example", 1),
            Err(JwtError::BadSignature)
        );
        let other = keyset(Alg::EdDSA);
        assert_eq!(
            decode(&other, &t, "https://as.example", 1),
            Err(JwtError::NotOurs)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.e30"] {
            assert!(decode(&keys, garbage, "https://as.example", 1).is_err());
        }
    }

    #[test]
    fn alg_in_header_must_match_the_key() {
        let keys = keyset(Alg::ES256);
        let t = encode(&keys, &claims(0));
        let header = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({"alg": "none", "kid": keys.signer().kid}))
                .unwrap(),
        );
        let rest: Vec<&str> = t.splitn(2, '.').collect();
        let forged = format!("{header}.{}", rest[1]);
        assert_eq!(
            decode(&keys, &forged, "https://as.example", 1),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn an_id_token_never_passes_for_an_access_token() {
        let m = MasterKey::generate();
        let keys = [
            generate_key(Alg::ES256, &m, 0).unwrap(),
            generate_key_for(KeyUse::IdToken, Alg::RS256, &m, 0).unwrap(),
        ];
        let set = KeySet::load(&keys, &m, 0).unwrap().unwrap();
        // Even an ID-token key signing access-token claims is refused: the lane decides.
        let forged = sign(set.id_token_signer().unwrap(), "at+jwt", &claims(0));
        assert_eq!(
            decode(&set, &forged, "https://as.example", 1),
            Err(JwtError::NotOurs)
        );
        assert!(decode(&set, &encode(&set, &claims(0)), "https://as.example", 1).is_ok());
    }

    #[test]
    fn at_hash_is_the_left_half_of_sha256() {
        // OpenID Connect Core §A.3's access token and at_hash.
        assert_eq!(
            at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
