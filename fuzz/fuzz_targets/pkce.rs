//! PKCE verifiers and challenges: shape checks and the (constant-time) match.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tessera_core::pkce::{pkce_matches, pkce_value_ok};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let (method, challenge, verifier) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let _ = pkce_value_ok(challenge);
    let _ = pkce_value_ok(verifier);
    let _ = pkce_matches(method, challenge, verifier);
});
