-- Scheduled rotation: a key published before it signs, and revocation of a compromised key.
ALTER TABLE signing_keys ADD COLUMN activates_at INTEGER;
ALTER TABLE signing_keys ADD COLUMN revoked_at INTEGER;
