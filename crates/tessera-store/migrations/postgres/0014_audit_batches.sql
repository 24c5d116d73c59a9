-- Token events in compact batches: one row per flush instead of one row and three index
-- entries per token. `id` is the largest id of the batch's events; min_at and max_at
-- are its earliest and latest `at`; its events' ids, drawn from
-- audit_events' sequence, are kept in `records`, and a marker row with the same id in
-- audit_events (event 'token.issued.batch'), which no listing shows, is deleted with its batch.
CREATE TABLE audit_batches (
    id       BIGINT PRIMARY KEY,
    first_id BIGINT NOT NULL,
    min_at   BIGINT NOT NULL,
    max_at   BIGINT NOT NULL,
    count    BIGINT NOT NULL,
    records  BYTEA NOT NULL
);
CREATE INDEX audit_batches_by_max_at ON audit_batches (max_at);
-- The partners, clients and users each batch names: a filtered listing reads only the
-- batches that name its partner, client or user.
CREATE TABLE audit_batch_keys (
    kind     TEXT NOT NULL,
    value    TEXT NOT NULL,
    batch_id BIGINT NOT NULL,
    PRIMARY KEY (kind, value, batch_id)
);
CREATE INDEX audit_batch_keys_by_batch ON audit_batch_keys (batch_id);
