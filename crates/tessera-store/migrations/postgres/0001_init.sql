-- Tessera's schema on PostgreSQL. Timestamps are unix seconds (BIGINT); secrets are SHA-256
-- digests (BYTEA). Ids compare bytewise (COLLATE "C") so that cursors page the same way as on
-- SQLite.

CREATE TABLE partners (
    id            TEXT COLLATE "C" PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL CONSTRAINT partners_email_key UNIQUE,
    org_code      TEXT NOT NULL CONSTRAINT partners_org_code_key UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    scopes        TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE partner_tokens (
    digest     BYTEA PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners (id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE accounts (
    id          TEXT COLLATE "C" PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    name        TEXT NOT NULL,
    external_id TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX accounts_by_partner ON accounts (partner_id, id);
CREATE UNIQUE INDEX accounts_external_id ON accounts (partner_id, external_id)
    WHERE external_id IS NOT NULL;

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    partner_id    TEXT NOT NULL REFERENCES partners (id),
    name          TEXT NOT NULL,
    secret_digest BYTEA NOT NULL,
    grant_types   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    frame_origins TEXT NOT NULL,
    dev           BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    partner_id    TEXT NOT NULL REFERENCES partners (id),
    account_id    TEXT REFERENCES accounts (id),
    username      TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'customer', 'member')),
    password_hash TEXT NOT NULL,
    first_name    TEXT,
    last_name     TEXT,
    external_id   TEXT,
    created_at    BIGINT NOT NULL,
    CONSTRAINT users_partner_username_key UNIQUE (partner_id, username)
);

CREATE TABLE scopes (
    name        TEXT PRIMARY KEY,
    description TEXT
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT
);

CREATE TABLE refresh_tokens (
    digest           BYTEA PRIMARY KEY,
    family_id        TEXT NOT NULL,
    partner_id       TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    account_id       TEXT,
    scope            TEXT NOT NULL,
    issued_at        BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    family_issued_at BIGINT NOT NULL,
    rotated_at       BIGINT,
    revoked_at       BIGINT,
    grant_id         TEXT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_by_grant ON refresh_tokens (grant_id) WHERE grant_id IS NOT NULL;

CREATE TABLE revocations (
    id    TEXT PRIMARY KEY,
    until BIGINT NOT NULL
);

CREATE TABLE authorization_requests (
    id                    TEXT PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    scope                 TEXT NOT NULL,
    state                 TEXT,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    dialect               TEXT NOT NULL,
    expires_at            BIGINT NOT NULL
);

CREATE TABLE sessions (
    digest     BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    expires_at BIGINT NOT NULL
);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    client_id  TEXT NOT NULL REFERENCES clients (id),
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX grants_active ON grants (user_id, client_id) WHERE revoked_at IS NULL;

CREATE TABLE authorization_codes (
    digest                BYTEA PRIMARY KEY,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    code_challenge        TEXT NOT NULL,
    code_challenge_method TEXT NOT NULL,
    user_id               TEXT NOT NULL,
    account_id            TEXT,
    scope                 TEXT NOT NULL,
    grant_id              TEXT NOT NULL,
    family_id             TEXT NOT NULL,
    expires_at            BIGINT NOT NULL,
    used_at               BIGINT
);

-- The change feed. Writers take a transaction-scoped advisory lock before appending, so that
-- sequence order is commit order and a poller can never skip a change that commits late.
CREATE TABLE changes (
    seq  BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    at   BIGINT NOT NULL
);
CREATE INDEX changes_by_time ON changes (at);
