-- The WireGuard mesh's nodes (issue 10): hosts joined through the agent and people's devices.
-- Each node made its own key pair; only the public key is here. A node's overlay addresses
-- are the mesh ranges' bases plus its `address_offset`, so one unique number keeps both
-- addresses unique. `owner` is the host's name for a host and the owner's login name for a
-- device. A device whose `expires_at` has passed is out of the mesh until it signs in again.
CREATE TABLE mesh_nodes (
    name           TEXT PRIMARY KEY NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('host', 'device')),
    owner          TEXT NOT NULL,
    public_key     TEXT NOT NULL UNIQUE,
    address_offset INTEGER NOT NULL UNIQUE,
    endpoint       TEXT,
    created_at     INTEGER NOT NULL,
    key_set_at     INTEGER NOT NULL,
    expires_at     INTEGER
) STRICT;

CREATE INDEX mesh_nodes_owner ON mesh_nodes (kind, owner);
