-- Host health: the version of the agent that last reached Warden over mutual TLS (its
-- User-Agent). `hosts.last_seen_at`, set at join since 0005, now follows every contact.
ALTER TABLE hosts ADD COLUMN agent_version TEXT;
