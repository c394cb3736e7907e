-- Users, groups, memberships, API tokens and the audit event table.
-- Times are milliseconds since the Unix epoch; ids are UUIDv7 in lowercase hex.

CREATE TABLE users (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    email        TEXT,
    created_at   INTEGER NOT NULL,
    disabled_at  INTEGER
) STRICT;

CREATE TABLE groups (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) STRICT;
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'member', 'scim')),
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    time       INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    actor_json TEXT NOT NULL,
    auth       TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    reason     TEXT,
    request_id TEXT NOT NULL,
    source     TEXT,
    details    TEXT NOT NULL
) STRICT;
