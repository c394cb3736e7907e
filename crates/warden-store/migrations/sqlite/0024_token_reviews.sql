-- Access reviews may cover API tokens: an item of source `token` is a live token (its name as
-- the subject, `role:ROLE` as the entitlement, its id in `token_id`). `owner` is the person
-- whose access an item is (the subject for a membership or grant; the person a token acts as,
-- else who made it), so that nobody reviews their own. SQLite cannot change a CHECK
-- constraint, so the table is rebuilt.
CREATE TABLE access_review_items_next (
    review_id    TEXT NOT NULL REFERENCES access_reviews (id),
    n            INTEGER NOT NULL,
    subject      TEXT NOT NULL,
    entitlement  TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('member', 'grant', 'token')),
    grant_id     TEXT,
    granted_at   INTEGER NOT NULL,
    granted_by   TEXT,
    granted_why  TEXT,
    last_used_at INTEGER,
    reviewer     TEXT NOT NULL,
    decision     TEXT CHECK (decision IN ('keep', 'revoke')),
    reason       TEXT,
    decided_by   TEXT,
    decided_at   INTEGER,
    verified_at  INTEGER,
    token_id     TEXT,
    owner        TEXT,
    PRIMARY KEY (review_id, n)
) STRICT;
INSERT INTO access_review_items_next (review_id, n, subject, entitlement, source, grant_id,
    granted_at, granted_by, granted_why, last_used_at, reviewer, decision, reason, decided_by,
    decided_at, verified_at)
SELECT review_id, n, subject, entitlement, source, grant_id, granted_at, granted_by, granted_why,
    last_used_at, reviewer, decision, reason, decided_by, decided_at, verified_at
FROM access_review_items;
DROP TABLE access_review_items;
ALTER TABLE access_review_items_next RENAME TO access_review_items;
CREATE INDEX access_review_items_reviewer ON access_review_items (reviewer, review_id);
