-- A token issued by a passkey sign-in (`warden login`) acts with its person's own rights; any
-- other token is held to its role's ceiling.
ALTER TABLE api_tokens ADD COLUMN passkey INTEGER NOT NULL DEFAULT 0 CHECK (passkey IN (0, 1));

-- Whether a SCIM group took over a Warden group that existed before it (listed in
-- `scim.adopt_groups`): deleting it then releases the group instead of deleting it.
ALTER TABLE scim_groups ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0 CHECK (adopted IN (0, 1));
