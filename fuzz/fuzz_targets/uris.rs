//! Redirect URIs and frame origins as registration validates them, and the error redirect
//! built from a registered URI.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let uri_ok = tessera_core::admin::check_redirect_uri(text).is_ok();
    let _ = tessera_core::admin::check_origin(text);
    if uri_ok {
        let _ = tessera_core::authorize::with_query(text, &[("code", "c"), ("state", text)]);
    }
});
