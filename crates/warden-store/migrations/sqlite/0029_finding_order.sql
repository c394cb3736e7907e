-- The orders the findings table offers besides by number: soonest due, and most severe
-- (then soonest due), each as one key with the id, so a page is read from an index however
-- many findings there are. The expressions must stay as the queries spell them.
CREATE INDEX vuln_findings_due_order ON vuln_findings ((COALESCE(due_at, 9999999999999)), id);
CREATE INDEX vuln_findings_severity_order
    ON vuln_findings ((COALESCE(effective, 5) * 10000000000000 + COALESCE(due_at, 9999999999999)), id);
