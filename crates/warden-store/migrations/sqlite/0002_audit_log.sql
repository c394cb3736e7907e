-- The tamper-evident audit log. Sequence numbers come from audit_head inside the writing
-- transaction, so they have no gaps; audit_nodes keeps every completed perfect subtree of the
-- RFC 9162 Merkle tree (level 0 = leaf hashes); audit_checkpoints keeps signed tree heads.
-- The unhashed event table of 0001 is kept, renamed, so nothing recorded is lost.

ALTER TABLE audit_events RENAME TO audit_events_unhashed;

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY NOT NULL,
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
    details    TEXT NOT NULL,
    leaf_hash  TEXT NOT NULL
) STRICT;
CREATE INDEX audit_log_time ON audit_log (time);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);
CREATE INDEX audit_log_action ON audit_log (action, seq);
CREATE INDEX audit_log_target ON audit_log (target, seq);

CREATE TABLE audit_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL
) STRICT;
INSERT INTO audit_head (id, size) VALUES (1, 0);

CREATE TABLE audit_checkpoints (
    size INTEGER PRIMARY KEY NOT NULL,
    time INTEGER NOT NULL,
    note TEXT NOT NULL
) STRICT;
