-- Token events in compact batches: one row per flush instead of one row and three index
-- entries per token. `id` is the id of the batch's newest event; the batch's events have the
-- ids first_id..id, reserved by a marker row with the same id in audit_events (event
-- 'token.issued.batch'), which no listing shows and which is deleted with its batch.
CREATE TABLE audit_batches (
    id       INTEGER PRIMARY KEY,
    first_id INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    last_at  INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    records  BLOB NOT NULL
);
CREATE INDEX audit_batches_by_last_at ON audit_batches (last_at);
