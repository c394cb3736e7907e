-- Findings whose advisory has no fixed version (`no_fix`): no SLA clock runs until a re-import
-- first shows a fix. `no_fix` is 1 while the finding waits for a fix; `fix_seen_at` is when an
-- import first showed one, until the clock is started from it (with its own audit event).
-- The state `no_fix` is a rated finding waiting for a fix.
ALTER TABLE vuln_findings ADD COLUMN no_fix BIGINT NOT NULL DEFAULT 0;
ALTER TABLE vuln_findings ADD COLUMN fix_seen_at BIGINT;
ALTER TABLE vuln_findings DROP CONSTRAINT vuln_findings_state_check;
ALTER TABLE vuln_findings ADD CONSTRAINT vuln_findings_state_check
    CHECK (state IN ('open', 'triage', 'no_fix', 'fixed', 'accepted', 'false_positive'));
CREATE INDEX vuln_findings_fix_seen ON vuln_findings (fix_seen_at) WHERE no_fix = 1;
