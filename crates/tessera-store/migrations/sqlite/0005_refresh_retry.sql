-- Lossless refresh and retention (issue 10): a rotated token remembers its successor, so that a retry within
-- the grace period can replace a successor whose response was lost.
ALTER TABLE refresh_tokens ADD COLUMN successor_digest BLOB;

-- The actor chain (RFC 8693 `act`, JSON) of an exchanged family, so that refreshes keep naming
-- the original actor.
ALTER TABLE refresh_tokens ADD COLUMN actor TEXT;

-- Retention (issue 10): the janitor finds what can never be used again by these.
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_by_revocation ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX authorization_requests_by_expiry ON authorization_requests (expires_at);
CREATE INDEX authorization_codes_by_expiry ON authorization_codes (expires_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX revocations_by_until ON revocations (until);
