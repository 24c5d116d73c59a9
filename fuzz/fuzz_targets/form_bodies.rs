//! Form bodies of the standard dialect: the form reader (repeated parameters refused), client
//! authentication, and the token request parser.
#![no_main]
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Ok(mut form) = tessera_server::standard::form::Form::parse(&headers, data) {
        let _ = tessera_server::standard::form::client_credentials(&headers, &mut form);
        let _ = tessera_server::standard::token::parse(&mut form);
    }
});
