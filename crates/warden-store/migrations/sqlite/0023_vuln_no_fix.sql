-- Findings whose advisory has no fixed version (`no_fix`): no SLA clock runs until a re-import
-- first shows a fix. `no_fix` is 1 while the finding waits for a fix; `fix_seen_at` is when an
-- import first showed one, until the clock is started from it (with its own audit event).
-- The state `no_fix` is a rated finding waiting for a fix. SQLite cannot change a CHECK
-- constraint, so the table is rebuilt.
CREATE TABLE vuln_findings_next (
    id              INTEGER PRIMARY KEY NOT NULL,
    asset           TEXT NOT NULL,
    subject         TEXT NOT NULL,
    advisory        TEXT NOT NULL,
    aliases         TEXT NOT NULL,
    package         TEXT,
    location        TEXT,
    fixed_in        TEXT,
    title           TEXT NOT NULL,
    details         TEXT,
    source          TEXT NOT NULL CHECK (source IN ('scan', 'report')),
    disclosed       INTEGER,
    cvss            TEXT,
    effective       INTEGER,
    state           TEXT NOT NULL
        CHECK (state IN ('open', 'triage', 'no_fix', 'fixed', 'accepted', 'false_positive')),
    first_seen      INTEGER NOT NULL,
    clock_start     INTEGER NOT NULL,
    due_at          INTEGER,
    next_alert_at   INTEGER,
    -- 0: no alert yet; 1: the 50 % alert went; 2: the 100 % one did. next_alert_at is when
    -- the next is due (half-way, then the due date).
    alerted         INTEGER NOT NULL DEFAULT 0,
    fixed_at        INTEGER,
    accepted_until  INTEGER,
    decided_by      TEXT,
    decided_at      INTEGER,
    decision_reason TEXT,
    rated_by        TEXT,
    rated_at        INTEGER,
    rating_reason   TEXT,
    no_fix          INTEGER NOT NULL DEFAULT 0,
    fix_seen_at     INTEGER
) STRICT;
INSERT INTO vuln_findings_next (id, asset, subject, advisory, aliases, package, location, fixed_in,
    title, details, source, disclosed, cvss, effective, state, first_seen, clock_start, due_at,
    next_alert_at, alerted, fixed_at, accepted_until, decided_by, decided_at, decision_reason,
    rated_by, rated_at, rating_reason)
SELECT id, asset, subject, advisory, aliases, package, location, fixed_in, title, details, source,
    disclosed, cvss, effective, state, first_seen, clock_start, due_at, next_alert_at, alerted,
    fixed_at, accepted_until, decided_by, decided_at, decision_reason, rated_by, rated_at,
    rating_reason
FROM vuln_findings;
DROP TABLE vuln_findings;
ALTER TABLE vuln_findings_next RENAME TO vuln_findings;
CREATE INDEX vuln_findings_due ON vuln_findings (due_at) WHERE state = 'open';
CREATE INDEX vuln_findings_severity_due ON vuln_findings (effective, due_at) WHERE state = 'open';
CREATE INDEX vuln_findings_asset_due ON vuln_findings (asset, due_at, effective) WHERE state = 'open';
CREATE INDEX vuln_findings_asset ON vuln_findings (asset, state);
CREATE INDEX vuln_findings_alerts ON vuln_findings (next_alert_at) WHERE state = 'open';
CREATE INDEX vuln_findings_acceptances ON vuln_findings (accepted_until) WHERE state = 'accepted';
CREATE INDEX vuln_findings_triage ON vuln_findings (asset) WHERE state = 'triage';
CREATE INDEX vuln_findings_fixed ON vuln_findings (fixed_at) WHERE state = 'fixed';
CREATE INDEX vuln_findings_fix_seen ON vuln_findings (fix_seen_at) WHERE no_fix = 1;
