//! Cookie headers as the pages read them: a named cookie (with and without the `__Host-`
//! prefix) and the count of flow cookies.
#![no_main]
use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use tessera_server::pages::view;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.append(header::COOKIE, v);
    }
    for secure in [false, true] {
        let _ = view::cookie(&headers, view::SESSION_COOKIE, secure);
        let _ = view::cookie(&headers, view::BROWSER_COOKIE, secure);
    }
    let _ = view::flow_cookies(&headers);
});
