-- Every policy set ever applied, newest active: its files (the *.cedar files and the tests
-- file, as a JSON object of name to text), their SHA-256 and who applied it.
CREATE TABLE policy_versions (
    version    BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    files      TEXT NOT NULL,
    policies   BIGINT NOT NULL,
    tests      BIGINT NOT NULL,
    applied_by TEXT NOT NULL,
    applied_at BIGINT NOT NULL
);
