-- SSH sessions through the recording proxy: who, as which login, on which host, from when to
-- when, why they ended, and their recordings (a JSON array with each file's SHA-256).
CREATE TABLE ssh_sessions (
    id         TEXT PRIMARY KEY,
    principal  TEXT NOT NULL,
    login      TEXT NOT NULL,
    host       TEXT NOT NULL,
    source     TEXT,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    end_reason TEXT,
    recordings TEXT NOT NULL
);
CREATE INDEX ssh_sessions_started ON ssh_sessions (started_at);
