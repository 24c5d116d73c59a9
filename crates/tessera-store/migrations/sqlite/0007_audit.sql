-- The audit trail: security events, appended in batches, deleted past their retention.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    partner_id TEXT,
    username   TEXT,
    client_id  TEXT,
    ip         TEXT,
    request_id TEXT,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_time ON audit_events (at);
CREATE INDEX audit_by_username ON audit_events (username, at) WHERE username IS NOT NULL;
CREATE INDEX audit_by_partner ON audit_events (partner_id, at) WHERE partner_id IS NOT NULL;
CREATE INDEX audit_by_client ON audit_events (client_id, at) WHERE client_id IS NOT NULL;
