-- How far each audit export sink (JSONL files, syslog, OTLP) has delivered the log.
CREATE TABLE audit_sink_cursors (
    name TEXT PRIMARY KEY NOT NULL,
    seq  INTEGER NOT NULL
) STRICT;
