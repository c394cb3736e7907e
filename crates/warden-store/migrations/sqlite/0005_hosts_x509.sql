-- X.509 certificates the issuing CA signed, hosts joined through agents, and the one-time
-- join tokens that let them in (only a hash of each token's secret is kept).
CREATE TABLE x509_certificates (
    serial      INTEGER PRIMARY KEY NOT NULL,
    ca_key_id   TEXT NOT NULL REFERENCES ca_keys (id),
    spiffe_id   TEXT NOT NULL,
    not_before  INTEGER NOT NULL,
    not_after   INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX x509_certificates_spiffe ON x509_certificates (spiffe_id);

CREATE TABLE hosts (
    name         TEXT PRIMARY KEY NOT NULL,
    labels       TEXT NOT NULL,
    addresses    TEXT NOT NULL,
    sshd_addr    TEXT,
    joined_at    INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;

CREATE TABLE join_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL,
    host        TEXT NOT NULL,
    labels      TEXT NOT NULL,
    addresses   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

-- SSH certificate key ids revoked as a whole (every certificate carrying the id, under every
-- trusted user CA key), published in the KRL beside revoked serials.
CREATE TABLE ssh_revoked_key_ids (
    key_id      TEXT PRIMARY KEY NOT NULL,
    revoked_at  INTEGER NOT NULL
) STRICT;
