//! Wire types of Tessera's dialects, shared by the server (which parses and renders them) and the
//! SDK (which sends and reads them). Only data shapes live here: no behaviour, no validation
//! beyond what serde does. [`admin`] is the admin API's; [`partner`] is the JSON dialect of
//! seed 000 (`/v2/...`);
//! [`standard`] the form dialect of RFC 6749 (`/oauth/...`); [`token_type`] the token type
//! identifiers both dialects use. Seed 000 and seed 002 are the wire contracts described in
//! `docs/wire-contracts.md`.

pub mod admin;
pub mod partner;
pub mod standard;

/// RFC 8693 §3 token type identifiers, and seed 000's own for a partner's machine token.
pub mod token_type {
    /// `subject_token_type` of a partner's machine token (seed 000).
    pub const MACHINE_TOKEN: &str = "urn:wazzup:oauth:token-type:machine_token";
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
}
