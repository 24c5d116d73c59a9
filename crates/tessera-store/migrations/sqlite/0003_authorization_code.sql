-- The authorization-code flow (issue 4): pending requests, sessions, consents, codes.

ALTER TABLE refresh_tokens ADD COLUMN grant_id TEXT;
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id) WHERE grant_id IS NOT NULL;

CREATE TABLE authorization_requests (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    scope                 TEXT NOT NULL,
    state                 TEXT,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    dialect               TEXT NOT NULL,
    expires_at            INTEGER NOT NULL
);

CREATE TABLE sessions (
    digest     BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    expires_at INTEGER NOT NULL
);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    client_id  TEXT NOT NULL REFERENCES clients (id),
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE UNIQUE INDEX grants_active ON grants (user_id, client_id) WHERE revoked_at IS NULL;

CREATE TABLE authorization_codes (
    digest                BLOB PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    account_id            TEXT,
    scope                 TEXT NOT NULL,
    grant_id              TEXT NOT NULL,
    family_id             TEXT NOT NULL,
    expires_at            INTEGER NOT NULL,
    used_at               INTEGER
) WITHOUT ROWID;

ALTER TABLE scopes ADD COLUMN description TEXT;
