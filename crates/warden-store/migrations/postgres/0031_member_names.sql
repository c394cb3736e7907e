-- Each membership carries its member's name, so a group's first members by name are a range
-- of one index (group, name) and not a sort of every member. A user's name never changes
-- once made, so the copy cannot go stale.
ALTER TABLE group_members ADD COLUMN user_name TEXT COLLATE "C";
UPDATE group_members m SET user_name = u.name FROM users u WHERE u.id = m.user_id;
ALTER TABLE group_members ALTER COLUMN user_name SET NOT NULL;
CREATE INDEX group_members_by_name ON group_members (group_id, user_name);
