-- The lockout's buckets (issue 9), shared by every node: one row per username being checked, see
-- tessera_core::lockout. `key` is SHA-256 of the username's kind and name; rows drain and are
-- pruned by housekeeping.

CREATE TABLE login_attempts (
    key   BYTEA PRIMARY KEY,
    level DOUBLE PRECISION NOT NULL,
    at    BIGINT NOT NULL
);
CREATE INDEX login_attempts_by_age ON login_attempts (at);
