-- The console's audit page filters by outcome (`denied` above all) newest first: an index so
-- that reads the matching events alone rather than scanning back through the whole log.
CREATE INDEX audit_log_outcome ON audit_log (outcome, seq);
