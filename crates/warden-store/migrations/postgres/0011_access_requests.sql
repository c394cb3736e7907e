-- Just-in-time access: requests for a group, the approvers' decisions, and the temporary
-- grants approval makes. Requests and decisions name people and groups as text and are never
-- deleted: they are the record. A grant counts as membership until it expires or ends.

CREATE TABLE access_requests (
    id          TEXT PRIMARY KEY,
    requester   TEXT NOT NULL,
    group_name  TEXT NOT NULL,
    reason      TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    approvals   BIGINT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
    created_at  BIGINT NOT NULL,
    decided_at  BIGINT
);
CREATE INDEX access_requests_state ON access_requests (state, created_at);

CREATE TABLE access_decisions (
    request_id TEXT NOT NULL REFERENCES access_requests (id),
    approver   TEXT NOT NULL,
    decision   TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason     TEXT NOT NULL,
    decided_at BIGINT NOT NULL,
    PRIMARY KEY (request_id, approver)
);

CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    request_id TEXT REFERENCES access_requests (id),
    granted_by TEXT NOT NULL,
    starts_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at   BIGINT,
    end_reason TEXT
);
CREATE INDEX grants_live ON grants (user_id) WHERE ended_at IS NULL;
CREATE INDEX grants_expiry ON grants (expires_at) WHERE ended_at IS NULL;
