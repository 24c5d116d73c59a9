-- An Idempotency-Key's outcome, written by the change itself: the request id that reserved the
-- key, and whether a change of that request committed (set in the change's own transaction).
-- A key whose request failed is freed only while `carried_out` is false, and a commit still in
-- flight holds the row's lock until it lands, so a slow commit is never taken for a failure.
ALTER TABLE idempotency_keys ADD COLUMN request_id TEXT;
ALTER TABLE idempotency_keys ADD COLUMN carried_out BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX idempotency_keys_by_request ON idempotency_keys (request_id)
    WHERE request_id IS NOT NULL;
