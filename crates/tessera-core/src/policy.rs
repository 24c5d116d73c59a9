//! Fixed limits and defaults that several parts of the engine share. A limit that one module
//! alone uses lives beside it (the janitor's batch and budget in `janitor`, the audit queue in
//! `audit`, page sizes in `inventory`).

/// The longest access-token lifetime any configuration may set (seconds). Retired signing keys
/// stay published this long, so every token they signed can still be verified until it expires.
pub const MAX_ACCESS_TOKEN_TTL: i64 = 86_400;

/// How far apart the clocks of two nodes (or a node and the janitor's) may be: a revocation
/// entry outlives the tokens it covers, and a family row its family's end, by this much more.
pub const CLOCK_MARGIN: i64 = 300;

/// Until when a revocation at `now` of a family (or of a grant's families) must be remembered:
/// past the expiry of any access token the family gave, even one minted at `now` on a node whose
/// clock is ahead by up to [`CLOCK_MARGIN`].
pub fn family_revocation_until(now: i64) -> i64 {
    now + MAX_ACCESS_TOKEN_TTL + CLOCK_MARGIN
}

/// Default lifetimes (README, *Tokens*).
pub const MACHINE_TOKEN_TTL: i64 = 28_800;
pub const CLIENT_ACCESS_TOKEN_TTL: i64 = 86_400;
pub const APP_TOKEN_TTL: i64 = 3_600;
pub const USER_TOKEN_TTL: i64 = 3_600;
/// Refresh tokens live 30 days unless used; each use rotates it and starts a new 30 days.
pub const REFRESH_TOKEN_TTL: i64 = 30 * 86_400;
/// A refresh-token family ends 90 days after it began, however often it was refreshed.
pub const REFRESH_FAMILY_LIFETIME: i64 = 90 * 86_400;
/// Reuse of a rotated refresh token within this many seconds is refused without revoking the
/// family (a client's lost response or a retry); after it, reuse is theft and revokes the family.
pub const REFRESH_REUSE_GRACE: i64 = 30;

/// Password checks that may wait for an Argon2 slot besides those running; past it, a check is
/// refused at once with "busy" (503 and `Retry-After`).
pub const PASSWORD_QUEUE: usize = 32;

/// Change-feed entries are kept a day; a node that has not read the feed for longer than that,
/// less the margin, reloads its caches instead of trusting the feed.
pub const FEED_RETENTION: i64 = 86_400;
pub const FEED_GAP_MARGIN: i64 = 300;

/// A scheduled signing key is published this long before it signs, so that a resource server
/// that caches the JWKS (for up to a day) knows its `kid` before it sees a token signed with it.
pub const KEY_ANNOUNCE_SECS: i64 = 86_400;

/// Audit events are kept 90 days.
pub const AUDIT_RETENTION: i64 = 90 * 86_400;

/// Input limits applied to every field that reaches the engine.
pub const MAX_NAME_LEN: usize = 200;
pub const MAX_EXTERNAL_ID_LEN: usize = 200;
pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_PASSWORD_LEN: usize = 1024;
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest token (JWT, refresh token, code) accepted anywhere, far above any Tessera mints.
pub const MAX_TOKEN_LEN: usize = 8192;
pub const MAX_PAGE_SIZE: u32 = 200;
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Authorization codes live 5 minutes (RFC 9700 §4.2: short-lived, single use).
pub const AUTHORIZATION_CODE_TTL: i64 = 300;
/// A pending `/authorize` request waits 30 minutes for the user to log in and consent.
pub const AUTHORIZATION_REQUEST_TTL: i64 = 1_800;
/// A browser session on the authorization pages lasts 12 hours.
pub const SESSION_TTL: i64 = 12 * 3_600;
/// Longest `state` accepted and echoed back.
pub const MAX_STATE_LEN: usize = 1_024;
/// Longest OpenID Connect `nonce` accepted at `/authorize`.
pub const MAX_NONCE_LEN: usize = 255;
/// Lifetime of an OpenID Connect ID token: proof of a sign-in, checked once by the client.
pub const ID_TOKEN_TTL: i64 = 3_600;
