-- The findings' searchable text, once per distinct text: what the findings table's text search
-- reads instead of every finding. A finding's text is its advisory, package and title, in that
-- order, one per line, ASCII letters lowered (SQLite's lower), cut at 600 characters; none of
-- the three changes once the finding is written. Many findings share a text (the same
-- advisory in the same package on many assets), so a search reads this table and then only
-- the matching findings, by `text_id`.
CREATE TABLE vuln_texts (
    id   INTEGER PRIMARY KEY NOT NULL,
    text TEXT NOT NULL UNIQUE
) STRICT;
INSERT INTO vuln_texts (text)
    SELECT DISTINCT substr(lower(advisory || char(10) || COALESCE(package, '') || char(10) || title), 1, 600)
    FROM vuln_findings;
ALTER TABLE vuln_findings ADD COLUMN text_id INTEGER;
UPDATE vuln_findings SET text_id = (
    SELECT t.id FROM vuln_texts t
    WHERE t.text = substr(lower(vuln_findings.advisory || char(10) || COALESCE(vuln_findings.package, '') || char(10) || vuln_findings.title), 1, 600)
);
CREATE INDEX vuln_findings_text ON vuln_findings (text_id, id);
-- An asset's findings in number order whatever their state (see the PostgreSQL migration).
CREATE INDEX vuln_findings_asset_order ON vuln_findings (asset, id);
