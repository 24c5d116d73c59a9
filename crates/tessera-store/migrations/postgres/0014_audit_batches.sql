-- Token events in compact batches: one row per flush instead of one row and three index
-- entries per token. `id` is the id of the batch's newest event; its events' ids, drawn from
-- audit_events' sequence, are kept in `records`, and a marker row with the same id in
-- audit_events (event 'token.issued.batch'), which no listing shows, is deleted with its batch.
CREATE TABLE audit_batches (
    id       BIGINT PRIMARY KEY,
    first_id BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at  BIGINT NOT NULL,
    count    BIGINT NOT NULL,
    records  BYTEA NOT NULL
);
CREATE INDEX audit_batches_by_last_at ON audit_batches (last_at);
