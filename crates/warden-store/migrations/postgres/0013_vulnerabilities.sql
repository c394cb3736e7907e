-- Vulnerability findings with severity SLAs (issue 9).
--
-- A finding's identity is its asset, what it is on (`subject`: a package's purl without
-- qualifiers, a code fingerprint or location) and any of its advisory's ids: `vuln_keys`
-- holds one row per (asset, subject, id), so the same flaw reported under a CVE by one scanner
-- and under a GHSA by another is one finding. Severity is never part of the identity.
-- Severities are ranks: 0 critical, 1 high, 2 medium, 3 low, 4 informational; NULL unrated.
--
-- Findings are never deleted, and their keys, sightings and history rows (and their asset) are
-- written by the store in the transaction that writes the finding, so those references carry
-- no foreign key: on PostgreSQL each checked row costs a trigger and a row lock, a third of a
-- 100,000-finding import.

CREATE TABLE vuln_assets (
    name       TEXT PRIMARY KEY,
    tier       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE vuln_imports (
    id          TEXT PRIMARY KEY,
    asset       TEXT NOT NULL REFERENCES vuln_assets (name),
    scanner     TEXT NOT NULL,
    format      TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at BIGINT NOT NULL,
    findings    BIGINT NOT NULL,
    opened      BIGINT NOT NULL,
    reopened    BIGINT NOT NULL,
    fixed       BIGINT NOT NULL
);
CREATE INDEX vuln_imports_asset ON vuln_imports (asset, imported_at);

CREATE TABLE vuln_findings (
    id              BIGINT PRIMARY KEY,
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
    disclosed       BIGINT,
    cvss            TEXT,
    effective       BIGINT,
    state           TEXT NOT NULL
        CHECK (state IN ('open', 'triage', 'fixed', 'accepted', 'false_positive')),
    first_seen      BIGINT NOT NULL,
    clock_start     BIGINT NOT NULL,
    due_at          BIGINT,
    next_alert_at   BIGINT,
    -- 0: no alert yet; 1: the 50 % alert went; 2: the 100 % one did. next_alert_at is when
    -- the next is due (half-way, then the due date).
    alerted         BIGINT NOT NULL DEFAULT 0,
    fixed_at        BIGINT,
    accepted_until  BIGINT,
    decided_by      TEXT,
    decided_at      BIGINT,
    decision_reason TEXT,
    rated_by        TEXT,
    rated_at        BIGINT,
    rating_reason   TEXT
);
-- The overdue query, its count and the figures read these partial indexes alone: by due
-- date; by severity then due date; by asset then due date, with the severity (an asset's
-- overdue list and its gate). An asset's findings by state are in number order.
CREATE INDEX vuln_findings_due ON vuln_findings (due_at) WHERE state = 'open';
CREATE INDEX vuln_findings_severity_due ON vuln_findings (effective, due_at) WHERE state = 'open';
CREATE INDEX vuln_findings_asset_due ON vuln_findings (asset, due_at) INCLUDE (effective) WHERE state = 'open';
CREATE INDEX vuln_findings_asset ON vuln_findings (asset, state, id);
CREATE INDEX vuln_findings_alerts ON vuln_findings (next_alert_at) WHERE state = 'open';
CREATE INDEX vuln_findings_acceptances ON vuln_findings (accepted_until) WHERE state = 'accepted';
CREATE INDEX vuln_findings_triage ON vuln_findings (asset) WHERE state = 'triage';
CREATE INDEX vuln_findings_fixed ON vuln_findings (fixed_at) WHERE state = 'fixed';

CREATE TABLE vuln_keys (
    asset      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    advisory   TEXT NOT NULL,
    finding_id BIGINT NOT NULL,
    PRIMARY KEY (asset, subject, advisory)
);

-- Which scanners last reported a finding; a finding no scanner reports any more is fixed.
CREATE TABLE vuln_sightings (
    asset      TEXT NOT NULL,
    scanner    TEXT NOT NULL,
    finding_id BIGINT NOT NULL,
    import_id  TEXT NOT NULL,
    PRIMARY KEY (asset, scanner, finding_id)
);
CREATE INDEX vuln_sightings_finding ON vuln_sightings (finding_id);

-- Every change of a finding: found, fixed, reopened, rated, accepted, false_positive, …
CREATE TABLE vuln_history (
    finding_id BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    change     TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX vuln_history_finding ON vuln_history (finding_id, at);

-- The SLA policy the due dates were computed with (one row), so a changed configuration is
-- noticed, recorded, and applied to open findings.
CREATE TABLE vuln_sla_policy (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    policy     TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);
