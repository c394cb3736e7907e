-- Access reviews: a campaign's population (who holds which group, how, since when, by whose
-- doing, last used) frozen and hashed at creation; each item's reviewer, decision, and the
-- verification that a revocation took effect. Kept forever. A group's owner reviews its
-- members in an `owner` campaign.

CREATE TABLE group_owners (
    group_id TEXT PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE
);

CREATE TABLE access_reviews (
    id                TEXT PRIMARY KEY,
    scope             TEXT NOT NULL,
    reviewer_rule     TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    due_at            BIGINT NOT NULL,
    auto_revoke       BIGINT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    closed_at         BIGINT,
    population_sha256 TEXT NOT NULL,
    last_reminded_at  BIGINT
);

CREATE TABLE access_review_items (
    review_id    TEXT NOT NULL REFERENCES access_reviews (id),
    n            BIGINT NOT NULL,
    subject      TEXT NOT NULL,
    entitlement  TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('member', 'grant')),
    grant_id     TEXT,
    granted_at   BIGINT NOT NULL,
    granted_by   TEXT,
    granted_why  TEXT,
    last_used_at BIGINT,
    reviewer     TEXT NOT NULL,
    decision     TEXT CHECK (decision IN ('keep', 'revoke')),
    reason       TEXT,
    decided_by   TEXT,
    decided_at   BIGINT,
    verified_at  BIGINT,
    PRIMARY KEY (review_id, n)
);
CREATE INDEX access_review_items_reviewer ON access_review_items (reviewer, review_id);
