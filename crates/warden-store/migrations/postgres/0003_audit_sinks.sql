-- How far each audit export sink (JSONL files, syslog, OTLP) has delivered the log.
CREATE TABLE audit_sink_cursors (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
