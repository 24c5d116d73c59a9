-- Revocation as a state of the parent: a refresh family's row carries the mark that every
-- revocation sets and every rotation reads inside its write, so that a revocation never misses
-- the successor a concurrent rotation inserts, and a grant's withdrawal finds its families even
-- after their tokens and codes are gone. Families of a grant get their row when they start;
-- others only when something revokes them (no row: live).
CREATE TABLE refresh_families (
    id         TEXT PRIMARY KEY,
    grant_id   TEXT,
    issued_at  BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX refresh_families_by_grant ON refresh_families (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX refresh_families_by_issue ON refresh_families (issued_at);

-- The families that exist: those with refresh tokens, and those of redeemed codes (a client
-- without refresh tokens still got access tokens in the code's family).
INSERT INTO refresh_families (id, grant_id, issued_at)
    SELECT family_id, MAX(grant_id), MIN(family_issued_at) FROM refresh_tokens GROUP BY family_id;
INSERT INTO refresh_families (id, grant_id, issued_at)
    SELECT family_id, MAX(grant_id), MIN(used_at) FROM authorization_codes
    WHERE used_at IS NOT NULL GROUP BY family_id
    ON CONFLICT (id) DO NOTHING;
-- Revoked ones: by a revocation entry of their id, or through their grant.
UPDATE refresh_families SET revoked_at = issued_at
    WHERE id IN (SELECT id FROM revocations)
       OR grant_id IN (SELECT id FROM grants WHERE revoked_at IS NOT NULL);
