-- A client registered with `--require-par` sends its authorization requests only by reference
-- to one it pushed first (RFC 9126): `/authorize` refuses its requests sent in the query.
-- Expand-only: a release before this column reads clients as before.
ALTER TABLE clients ADD COLUMN require_par BIGINT NOT NULL DEFAULT 0;
