//! The partner dialect's Authorization header (Basic email:password or Bearer token).
#![no_main]
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.insert(header::AUTHORIZATION, v);
    }
    let _ = tessera_server::partner::auth::parse(&headers);
});
