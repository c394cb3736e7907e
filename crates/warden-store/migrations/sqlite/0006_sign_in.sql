-- Sign-in: OIDC states already used (a callback works once), the IdP identities linked to users,
-- the group memberships an IdP granted, and server-side web sessions (only hashes of their
-- secrets are kept).
CREATE TABLE oidc_used_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    used_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE user_identities (
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email         TEXT,
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
) STRICT;
CREATE INDEX user_identities_user ON user_identities (user_id);

CREATE TABLE idp_group_grants (
    provider TEXT NOT NULL,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, user_id, group_id)
) STRICT;

CREATE TABLE web_sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    secret_hash  TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    stage        TEXT NOT NULL CHECK (stage IN ('passkey_enrollment', 'passkey', 'active')),
    method       TEXT NOT NULL,
    amr          TEXT NOT NULL,
    acr          TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ended_at     INTEGER,
    end_reason   TEXT
) STRICT;
CREATE INDEX web_sessions_user ON web_sessions (user_id);

-- Passkeys and security keys (WebAuthn credentials: public keys and counters, no secrets).
CREATE TABLE passkeys (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    credential    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    locked_at     INTEGER,
    lock_reason   TEXT,
    removed_at    INTEGER
) STRICT;
CREATE INDEX passkeys_user ON passkeys (user_id);

-- One-time links that let a local user register their first passkey.
CREATE TABLE enrollment_links (
    id          TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

-- One-time codes that hand `warden login` a CLI credential (RFC 8252 loopback flow, PKCE).
CREATE TABLE cli_codes (
    code_hash    TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    challenge    TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
) STRICT;
