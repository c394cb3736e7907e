-- Access reviews: a campaign's population (who holds which group, how, since when, by whose
-- doing, last used) frozen and hashed at creation; each item's reviewer, decision, and the
-- verification that a revocation took effect. Kept forever. A group's owner reviews its
-- members in an `owner` campaign.

CREATE TABLE group_owners (
    group_id TEXT PRIMARY KEY NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE
) STRICT;

CREATE TABLE access_reviews (
    id                TEXT PRIMARY KEY NOT NULL,
    scope             TEXT NOT NULL,
    reviewer_rule     TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    due_at            INTEGER NOT NULL,
    auto_revoke       INTEGER NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    closed_at         INTEGER,
    population_sha256 TEXT NOT NULL,
    last_reminded_at  INTEGER
) STRICT;

CREATE TABLE access_review_items (
    review_id    TEXT NOT NULL REFERENCES access_reviews (id),
    n            INTEGER NOT NULL,
    subject      TEXT NOT NULL,
    entitlement  TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('member', 'grant')),
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
    PRIMARY KEY (review_id, n)
) STRICT;
CREATE INDEX access_review_items_reviewer ON access_review_items (reviewer, review_id);
