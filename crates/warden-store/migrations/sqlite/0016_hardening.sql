-- A token issued by a passkey sign-in (`warden login`) acts with its person's own rights; any
-- other token is held to its role's ceiling.
ALTER TABLE api_tokens ADD COLUMN passkey INTEGER NOT NULL DEFAULT 0 CHECK (passkey IN (0, 1));

-- Whether a SCIM group took over a Warden group that existed before it (listed in
-- `scim.adopt_groups`): deleting it then releases the group instead of deleting it.
ALTER TABLE scim_groups ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0 CHECK (adopted IN (0, 1));

-- Each event's MAC (HMAC-SHA-256 of its leaf hash, hex) under a key only the servers hold;
-- NULL for events written before MACs began (the key's from_seq).
ALTER TABLE audit_log ADD COLUMN mac TEXT;
-- The MAC key, sealed under the KEK with its from_seq bound into the seal.
CREATE TABLE audit_mac_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    sealed_key  TEXT NOT NULL,
    from_seq    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
