//! PKCE (RFC 7636): the shape of verifiers and challenges, and the check that a verifier answers
//! its challenge. `/authorize` checks the challenge, the `authorization_code` grant the verifier.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`; the
/// same alphabet and lengths hold for a challenge.
pub fn pkce_value_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The `S256` challenge of `verifier`: base64url of its SHA-256, without padding.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// Whether `verifier` matches `challenge` under `method` (constant time).
pub fn pkce_matches(method: &str, challenge: &str, verifier: &str) -> bool {
    let expected = match method {
        "S256" => s256_challenge(verifier),
        "plain" => verifier.to_string(),
        _ => return false,
    };
    crate::secret::ct_eq(expected.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches("S256", challenge, verifier));
        assert!(!pkce_matches(
            "S256",
            challenge,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx"
        ));
        assert!(pkce_matches("plain", verifier, verifier));
        assert!(!pkce_matches("S512", challenge, verifier));
        assert!(pkce_value_ok(verifier));
        assert!(!pkce_value_ok("short"));
        assert!(!pkce_value_ok(&"a".repeat(129)));
        assert!(!pkce_value_ok(&format!("{}+", "a".repeat(50))));
    }
}
