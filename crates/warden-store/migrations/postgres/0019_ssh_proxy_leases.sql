-- Each SSH proxy (a server's, or a `warden proxy`) holds a lease it renews while it runs, and
-- each session is stored with the proxy that holds it: when a proxy dies without ending its
-- sessions, they end on the record once its lease runs out, instead of staying open forever.
CREATE TABLE ssh_proxies (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    lease_until BIGINT NOT NULL
);
ALTER TABLE ssh_sessions ADD COLUMN proxy_id TEXT;
CREATE INDEX ssh_sessions_open_by_proxy ON ssh_sessions (proxy_id) WHERE ended_at IS NULL;
