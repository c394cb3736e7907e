-- The compliance monitor's latest run over the default period (every test, without
-- populations): `compliance status` and the console show it, with its time, instead of
-- reading the whole log again; `--fresh` recomputes. One row.
CREATE TABLE compliance_runs (
    id          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    computed_at INTEGER NOT NULL,
    period_from INTEGER NOT NULL,
    period_to   INTEGER NOT NULL,
    results     TEXT NOT NULL
) STRICT;
