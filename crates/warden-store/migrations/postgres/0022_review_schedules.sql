-- Recurring access reviews: when each schedule (by scope) last opened a campaign, so that
-- one replica opens each turn.
CREATE TABLE review_schedules (
    scope     TEXT PRIMARY KEY NOT NULL,
    opened_at BIGINT NOT NULL
);
