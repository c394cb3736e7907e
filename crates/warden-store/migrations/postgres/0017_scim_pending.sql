-- Members a SCIM client named in a group before Warden has a provisioned user with that id
-- (a user deleted and not yet created again, or groups pushed before their users): held here,
-- never counted as members, and made members in the transaction that provisions the user.
-- Removing one from the group, replacing the group's members without it, or deleting the
-- group drops it.
CREATE TABLE scim_pending_members (
    group_id  TEXT NOT NULL REFERENCES scim_groups (group_id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    held_at   BIGINT NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX scim_pending_members_member ON scim_pending_members (member_id);
