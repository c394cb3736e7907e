-- Break-glass credentials (HIPAA's emergency access procedure): the throwaway CA's public key
-- that hosts trust only while cut off from Warden, and who made it, when, why, until when,
-- split how. The private key is never here: it exists only in the share files.
CREATE TABLE break_glass (
    id         TEXT PRIMARY KEY NOT NULL,
    ca_public  TEXT NOT NULL,
    key_sha256 TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    shares     INTEGER NOT NULL,
    threshold  INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

-- Each use a host's agent reported once Warden was back: the session recorded on the host,
-- and its after-action review, open until someone closes it with a summary.
CREATE TABLE break_glass_uses (
    id               TEXT PRIMARY KEY NOT NULL,
    credential       TEXT NOT NULL,
    host             TEXT NOT NULL,
    login            TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    recording        TEXT,
    recording_sha256 TEXT,
    reported_at      INTEGER NOT NULL,
    closed_at        INTEGER,
    closed_by        TEXT,
    summary          TEXT
) STRICT;
CREATE INDEX break_glass_uses_open ON break_glass_uses (started_at) WHERE closed_at IS NULL;
