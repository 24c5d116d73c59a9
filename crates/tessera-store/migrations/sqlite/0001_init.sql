-- Tessera's schema on SQLite. Timestamps are unix seconds; secrets are SHA-256 digests (BLOB).

CREATE TABLE partners (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL UNIQUE,
    org_code      TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    scopes        TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE partner_tokens (
    digest     BLOB PRIMARY KEY,
    partner_id TEXT NOT NULL REFERENCES partners (id),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    name        TEXT NOT NULL,
    external_id TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX accounts_by_partner ON accounts (partner_id, id);
CREATE UNIQUE INDEX accounts_external_id ON accounts (partner_id, external_id)
    WHERE external_id IS NOT NULL;

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    partner_id    TEXT NOT NULL REFERENCES partners (id),
    name          TEXT NOT NULL,
    secret_digest BLOB NOT NULL,
    grant_types   TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    frame_origins TEXT NOT NULL,
    dev           INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    partner_id    TEXT NOT NULL REFERENCES partners (id),
    account_id    TEXT REFERENCES accounts (id),
    username      TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'customer', 'member')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (partner_id, username)
);

CREATE TABLE scopes (
    name TEXT PRIMARY KEY
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    retired_at     INTEGER
);

CREATE TABLE refresh_tokens (
    digest           BLOB PRIMARY KEY,
    family_id        TEXT NOT NULL,
    partner_id       TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    account_id       TEXT,
    scope            TEXT NOT NULL,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    family_issued_at INTEGER NOT NULL,
    rotated_at       INTEGER,
    revoked_at       INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Revoked access-token jtis and refresh-family sids, kept until the tokens they cover expire.
CREATE TABLE revocations (
    id    TEXT PRIMARY KEY,
    until INTEGER NOT NULL
);

-- The change feed: every node polls it to invalidate its caches (see tessera-core::engine).
CREATE TABLE changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    at   INTEGER NOT NULL
);
