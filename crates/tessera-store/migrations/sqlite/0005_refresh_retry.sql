-- Lossless refresh (issue 10): a rotated token remembers its successor, so that a retry within
-- the grace period can replace a successor whose response was lost.
ALTER TABLE refresh_tokens ADD COLUMN successor_digest BLOB;

-- The actor chain (RFC 8693 `act`, JSON) of an exchanged family, so that refreshes keep naming
-- the original actor.
ALTER TABLE refresh_tokens ADD COLUMN actor TEXT;
