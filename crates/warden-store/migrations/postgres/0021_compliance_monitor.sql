-- The compliance monitor's memory: each automated test's last state, so that a test that
-- starts failing is recorded once (`compliance.test.fail`) and its recovery once
-- (`compliance.test.pass`), whichever replica's timer sees it first.
CREATE TABLE compliance_tests (
    test       TEXT PRIMARY KEY NOT NULL,
    passing    BIGINT NOT NULL,
    since      BIGINT NOT NULL,
    exceptions BIGINT NOT NULL
);
