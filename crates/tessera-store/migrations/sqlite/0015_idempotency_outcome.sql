-- An Idempotency-Key's outcome, written by the change itself: the request id that reserved the
-- key, and whether a change of that request committed (set in the change's own transaction).
-- A key whose request failed is freed only while `carried_out` is 0; the write lock orders the
-- release after a commit in flight.
ALTER TABLE idempotency_keys ADD COLUMN request_id TEXT;
ALTER TABLE idempotency_keys ADD COLUMN carried_out INTEGER NOT NULL DEFAULT 0;
CREATE INDEX idempotency_keys_by_request ON idempotency_keys (request_id)
    WHERE request_id IS NOT NULL;
