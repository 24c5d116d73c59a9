-- The lockout's buckets (issue 9): one row per username being checked, see tessera_core::lockout.
-- `key` is SHA-256 of the username's kind and name; rows drain and are pruned by housekeeping.

CREATE TABLE login_attempts (
    key   BLOB PRIMARY KEY,
    level REAL NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX login_attempts_by_age ON login_attempts (at);
