-- The vulnerability dashboard's figures, kept: remediation figures, the 30-day SLA burn-down
-- and per-asset counts, for all assets (scope '') and for each asset (scope = its name).
-- Derived data, recomputed by a timer when findings change and at least every
-- `vuln.figures_every`, so a page over a million findings reads one row instead of counting
-- them. `marker` is the audit sequence of the latest change to findings they include.
CREATE TABLE vuln_figures (
    scope       TEXT PRIMARY KEY NOT NULL,
    computed_at BIGINT NOT NULL,
    since       BIGINT NOT NULL,
    marker      BIGINT NOT NULL,
    took_ms     BIGINT NOT NULL,
    figures     TEXT NOT NULL
);
