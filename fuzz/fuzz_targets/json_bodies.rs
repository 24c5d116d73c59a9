//! JSON bodies of the partner dialect: the depth-capped reader, then the token request parser
//! and the account request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tessera_proto::partner::{CreateAccountRequest, TokenRequest};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = tessera_server::body::parse_json::<TokenRequest>(data) {
        let _ = tessera_server::partner::token::parse(req);
    }
    let _ = tessera_server::body::parse_json::<CreateAccountRequest>(data);
    let _ = tessera_server::body::parse_json::<serde_json::Value>(data);
});
