//! Wire types of Tessera's dialects, shared by the server (which parses and renders them) and the
//! SDK (which sends and reads them). Only data shapes live here: no behaviour, no validation
//! beyond what serde does. [`admin`] is the admin API's; [`claims`] an access token's payload;
//! [`partner`] the JSON dialect of seed 000 (`/v2/...`); [`standard`] the form dialect of RFC
//! 6749 (`/oauth/...`); [`grant_type`] and [`token_type`] the grant and token type identifiers
//! both dialects use. Seed 000 and seed 002 are the wire contracts described in
//! `docs/wire-contracts.md`.

pub mod admin;
pub mod claims;
pub mod partner;
pub mod standard;

/// The `grant_type` values both dialects accept (RFC 6749 §4 and §6, RFC 8693 §2.1).
pub mod grant_type {
    pub const AUTHORIZATION_CODE: &str = "authorization_code";
    pub const CLIENT_CREDENTIALS: &str = "client_credentials";
    pub const PASSWORD: &str = "password";
    pub const REFRESH_TOKEN: &str = "refresh_token";
    /// RFC 8693's token exchange.
    pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
}

/// RFC 8693 §3 token type identifiers, and seed 000's own for a partner's machine token.
pub mod token_type {
    /// `subject_token_type` of a partner's machine token (seed 000).
    pub const MACHINE_TOKEN: &str = "urn:wazzup:oauth:token-type:machine_token";
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
}
