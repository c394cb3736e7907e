-- The text index names the asset too, so a common text's findings on one asset are a range of
-- it: counting them reads only those findings, not the text's findings on every asset.
DROP INDEX vuln_findings_text;
CREATE INDEX vuln_findings_text ON vuln_findings (text_id, asset, id);
