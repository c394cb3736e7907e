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
    name       TEXT PRIMARY KEY NOT NULL,
    tier       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE vuln_imports (
    id          TEXT PRIMARY KEY NOT NULL,
    asset       TEXT NOT NULL REFERENCES vuln_assets (name),
    scanner     TEXT NOT NULL,
    format      TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    findings    INTEGER NOT NULL,
    opened      INTEGER NOT NULL,
    reopened    INTEGER NOT NULL,
    fixed       INTEGER NOT NULL
) STRICT;
CREATE INDEX vuln_imports_asset ON vuln_imports (asset, imported_at);

CREATE TABLE vuln_findings (
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
        CHECK (state IN ('open', 'triage', 'fixed', 'accepted', 'false_positive')),
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
    rating_reason   TEXT
) STRICT;
-- The overdue query, its count and the figures read these partial indexes alone: by due
-- date; by severity then due date; by asset then due date, with the severity (an asset's
-- overdue list and its gate). An asset's findings by state are in number order.
CREATE INDEX vuln_findings_due ON vuln_findings (due_at) WHERE state = 'open';
CREATE INDEX vuln_findings_severity_due ON vuln_findings (effective, due_at) WHERE state = 'open';
CREATE INDEX vuln_findings_asset_due ON vuln_findings (asset, due_at, effective) WHERE state = 'open';
CREATE INDEX vuln_findings_asset ON vuln_findings (asset, state);
CREATE INDEX vuln_findings_alerts ON vuln_findings (next_alert_at) WHERE state = 'open';
CREATE INDEX vuln_findings_acceptances ON vuln_findings (accepted_until) WHERE state = 'accepted';
CREATE INDEX vuln_findings_triage ON vuln_findings (asset) WHERE state = 'triage';
CREATE INDEX vuln_findings_fixed ON vuln_findings (fixed_at) WHERE state = 'fixed';

CREATE TABLE vuln_keys (
    asset      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    advisory   TEXT NOT NULL,
    finding_id INTEGER NOT NULL,
    PRIMARY KEY (asset, subject, advisory)
) STRICT, WITHOUT ROWID;

-- Which scanners last reported a finding; a finding no scanner reports any more is fixed.
CREATE TABLE vuln_sightings (
    asset      TEXT NOT NULL,
    scanner    TEXT NOT NULL,
    finding_id INTEGER NOT NULL,
    import_id  TEXT NOT NULL,
    PRIMARY KEY (asset, scanner, finding_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX vuln_sightings_finding ON vuln_sightings (finding_id);

-- Every change of a finding: found, fixed, reopened, rated, accepted, false_positive, …
CREATE TABLE vuln_history (
    finding_id INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    change     TEXT NOT NULL,
    detail     TEXT NOT NULL
) STRICT;
CREATE INDEX vuln_history_finding ON vuln_history (finding_id, at);

-- The SLA policy the due dates were computed with (one row), so a changed configuration is
-- noticed, recorded, and applied to open findings.
CREATE TABLE vuln_sla_policy (
    id         INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    policy     TEXT NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT;
