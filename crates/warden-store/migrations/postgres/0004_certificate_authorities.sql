-- Certificate authority keys (private halves sealed under the key-encryption key; never in
-- plaintext here) and the SSH certificates they issued, for revocation and the KRL.
CREATE TABLE ca_keys (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('ssh-user', 'ssh-host', 'x509-root', 'x509-issuing')),
    public_key  TEXT NOT NULL,
    sealed_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
CREATE INDEX ca_keys_kind ON ca_keys (kind, created_at);

CREATE TABLE ssh_certificates (
    serial       BIGINT PRIMARY KEY,
    ca_key_id    TEXT NOT NULL REFERENCES ca_keys (id),
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'host')),
    key_id       TEXT NOT NULL,
    principals   TEXT NOT NULL,
    valid_after  BIGINT NOT NULL,
    valid_before BIGINT NOT NULL,
    issued_at    BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX ssh_certificates_revoked ON ssh_certificates (ca_key_id, revoked_at);
