-- Each membership carries its member's name, so a group's first members by name are a range
-- of one index (group, name) and not a sort of every member. A user's name never changes
-- once made, so the copy cannot go stale. SQLite cannot add a NOT NULL column without a
-- default, so the table is made again.
CREATE TABLE group_members_named (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_name TEXT NOT NULL,
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) STRICT;
INSERT INTO group_members_named (group_id, user_id, user_name, added_at)
    SELECT m.group_id, m.user_id, u.name, m.added_at
    FROM group_members m JOIN users u ON u.id = m.user_id;
DROP TABLE group_members;
ALTER TABLE group_members_named RENAME TO group_members;
CREATE INDEX group_members_user ON group_members (user_id);
CREATE INDEX group_members_by_name ON group_members (group_id, user_name);
