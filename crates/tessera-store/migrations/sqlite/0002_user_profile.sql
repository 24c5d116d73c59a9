-- Sign-up (seed 002) keeps the buyer's names and the partner's own id for them.
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
ALTER TABLE users ADD COLUMN external_id TEXT;
