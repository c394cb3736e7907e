-- SCIM 2.0 provisioning: the resource each identity provider manages, beside the Warden user
-- or group it provisions. Columns ending in `_key` hold text lowercased for the filters of
-- attributes SCIM compares case-insensitively; the document is the canonical resource (without
-- `id`, `meta`, `active` and `groups`, which come from Warden's own state).

CREATE TABLE scim_users (
    user_id       TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_name     TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    external_id   TEXT,
    display_key   TEXT,
    given_key     TEXT,
    family_key    TEXT,
    formatted_key TEXT,
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (user_name_key);
CREATE INDEX scim_users_external_id ON scim_users (external_id);

-- The resource itself, apart, so that filters scan narrow rows.
CREATE TABLE scim_user_documents (
    user_id  TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    document TEXT NOT NULL
) STRICT;

-- Users a SCIM client deleted: their Warden user stays (disabled) for its history, and is
-- provisioned again if the client creates the same person anew.
CREATE TABLE scim_deleted_users (
    user_id    TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    deleted_at INTEGER NOT NULL
) STRICT;

-- Disabled users, for `active` filters.
CREATE INDEX users_disabled ON users (id) WHERE disabled_at IS NOT NULL;

CREATE TABLE scim_user_emails (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    value_key  TEXT NOT NULL,
    type_key   TEXT,
    is_primary INTEGER NOT NULL
) STRICT;
CREATE INDEX scim_user_emails_user ON scim_user_emails (user_id);
CREATE INDEX scim_user_emails_value ON scim_user_emails (value_key);

CREATE TABLE scim_groups (
    group_id     TEXT PRIMARY KEY NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    display_key  TEXT NOT NULL UNIQUE,
    external_id  TEXT,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX scim_groups_external_id ON scim_groups (external_id);
