//! Tessera's engine: everything an OAuth authorization server decides, with no HTTP, no SQL and
//! no dialect (no wire field names: each dialect maps the engine's neutral names to its own).
//!
//! Layout: [`grants`] holds one module per grant type, each a plain function of
//! `(engine, caller, request, now)`, and [`caller`] who is asking and the scope rules they share;
//! [`engine`] holds the per-process state both dialects share (key set, caches, authentication,
//! rate limiter, change-feed sync); [`authorize`] is the front half of the authorization-code
//! flow (with [`pkce`]); [`store`] defines the storage contract that `tessera-store` implements
//! per database; [`jwt`] and [`keys`] mint and verify tokens with keys parsed once; [`secret`]
//! and [`password`] handle generated secrets (SHA-256 at rest) and human passwords (Argon2id);
//! [`operations`] is what an operator does (the CLI and the admin API), each change audited in its
//! transaction; [`error`] is the one error type that each dialect maps to its
//! wire format in one place. Time is always passed in as `now` (unix seconds), so expiry and
//! rotation are tested without sleeping (`tests/engine`).
//!
//! "Seed 000" and "seed 002" in these docs are the two wire contracts the dialects keep, stated
//! with their requests in `docs/wire-contracts.md`.

pub mod accounts;
mod admin;
pub mod audit;
pub mod authorize;
pub mod budget;
pub mod calendar;
pub mod caller;
pub mod engine;
pub mod error;
pub mod grants;
pub mod identity;
pub mod introspect;
pub mod inventory;
pub mod janitor;
pub mod jwt;
pub mod keys;
pub mod lockout;
pub mod master;
pub mod model;
pub mod operations;
pub mod password;
pub mod pkce;
pub mod policy;
pub mod revoke;
pub mod scope;
pub mod secret;
pub mod store;
pub mod telemetry;
pub mod userinfo;
pub mod users;

pub use caller::Caller;
pub use engine::{Engine, EngineConfig};
pub use error::{EngineError, Field, FieldError};

/// The current time in unix seconds, read at the edges (handlers, CLI) and passed inward.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
