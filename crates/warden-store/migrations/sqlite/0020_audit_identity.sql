-- One audit log identity per deployment. The checkpoint signing key is kept once, sealed under
-- the KEK, instead of in each replica's data directory (where every replica made its own and
-- an export signed by two could not verify with one key); and one replica at a time signs,
-- holding the signer's lease.
CREATE TABLE audit_signing_key (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    name       TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE audit_signer (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    holder      TEXT NOT NULL,
    lease_until INTEGER NOT NULL
) STRICT;
