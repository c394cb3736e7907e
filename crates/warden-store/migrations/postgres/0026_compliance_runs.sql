-- The compliance monitor's latest run over the default period (every test, without
-- populations): `compliance status` and the console show it, with its time, instead of
-- reading the whole log again; `--fresh` recomputes. One row.
CREATE TABLE compliance_runs (
    id          BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    computed_at BIGINT NOT NULL,
    period_from BIGINT NOT NULL,
    period_to   BIGINT NOT NULL,
    results     TEXT NOT NULL
);
