//! The grants and the engine's caches below HTTP: a real [`Engine`] over a real SQLite store in
//! a temporary file, with the clock passed in, so that expiry, grace periods and lockouts are
//! tested at their boundaries without sleeping. The wire formats are tested through the real
//! server in `crates/tessera/tests/it`.
//!
//! [`Engine`]: tessera_core::Engine

mod authorization_code;
mod caches;
mod client_credentials;
mod operations;
mod password;
mod refresh_token;
mod support;
mod token_exchange;
