//! JWT parsing and verification against a key set of every algorithm Tessera signs with.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tessera_core::keys::{Alg, KeySet, MasterKey, generate_key};

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let master = MasterKey::generate();
        let stored: Vec<_> = [Alg::ES256, Alg::EdDSA, Alg::RS256]
            .into_iter()
            .enumerate()
            .map(|(i, alg)| {
                let mut k = generate_key(alg, &master, 1000 + i as i64).unwrap();
                if i < 2 {
                    k.retired_at = Some(2000);
                }
                k
            })
            .collect();
        KeySet::load(&stored, &master, 3000).unwrap().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = tessera_core::jwt::decode(keys(), token, "https://as.example", 3000);
        let _ = tessera_core::jwt::decode_ignoring_expiry(keys(), token, "https://as.example");
        let _ = tessera_core::jwt::looks_like_jwt(token);
    }
});
