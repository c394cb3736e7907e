-- Certificate authority keys (private halves sealed under the key-encryption key; never in
-- plaintext here) and the SSH certificates they issued, for revocation and the KRL.
CREATE TABLE ca_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('ssh-user', 'ssh-host', 'x509-root', 'x509-issuing')),
    public_key  TEXT NOT NULL,
    sealed_key  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
) STRICT;
CREATE INDEX ca_keys_kind ON ca_keys (kind, created_at);

CREATE TABLE ssh_certificates (
    serial       INTEGER PRIMARY KEY NOT NULL,
    ca_key_id    TEXT NOT NULL REFERENCES ca_keys (id),
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'host')),
    key_id       TEXT NOT NULL,
    principals   TEXT NOT NULL,
    valid_after  INTEGER NOT NULL,
    valid_before INTEGER NOT NULL,
    issued_at    INTEGER NOT NULL,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX ssh_certificates_revoked ON ssh_certificates (ca_key_id, revoked_at);
