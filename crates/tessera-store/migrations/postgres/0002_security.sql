-- Issue 9 (security): the lockout's buckets, an index to revoke a grant's code families, and
-- per-client PKCE, registration, secret rotation and disabling.
-- Buckets are shared by every node: one row per username being checked, see
-- tessera_core::lockout. `key` is SHA-256 of the username's kind and name; rows drain and are
-- pruned by housekeeping.

CREATE TABLE login_attempts (
    key   BYTEA PRIMARY KEY,
    level DOUBLE PRECISION NOT NULL,
    at    BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_age ON login_attempts (at);

-- Withdrawing a grant revokes the families of its codes too (issue 9, item 3): their access
-- tokens name the family even when no refresh token was issued.
CREATE INDEX authorization_codes_by_grant ON authorization_codes (grant_id);

-- Per-client policy (issue 9, items 5 and 9): PKCE `plain` stays allowed for clients that
-- existed before (seed 000 lists it) and is off for new ones unless asked for; registration on
-- Tessera's pages is off unless a client is created with it.
ALTER TABLE clients ADD COLUMN pkce_plain BIGINT NOT NULL DEFAULT 1;
ALTER TABLE clients ADD COLUMN allow_registration BIGINT NOT NULL DEFAULT 0;

-- Credentials after a leak (issue 9, item 12): a rotated secret may keep working until an
-- overlap ends; a disabled client authenticates no more and its tokens stop verifying.
ALTER TABLE clients ADD COLUMN previous_secret_digest BYTEA;
ALTER TABLE clients ADD COLUMN previous_secret_until BIGINT;
ALTER TABLE clients ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
