-- Users, groups, memberships, API tokens and the audit event table.
-- Times are milliseconds since the Unix epoch; ids are UUIDv7 in lowercase hex.
-- Names sort bytewise (COLLATE "C") so that pagination orders exactly as on SQLite.

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    name         TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    email        TEXT,
    created_at   BIGINT NOT NULL,
    disabled_at  BIGINT
);

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'member', 'scim')),
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time       BIGINT NOT NULL,
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
);
