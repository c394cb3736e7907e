//! The offline verifier: reads an export and checks it against the log's public key alone.

use std::io::BufRead;

use crate::export::HexHash;
use crate::{Checkpoint, ExportLine, FORMAT, Frontier, NoteError, VerifierKey, verify_consistency};

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Events checked.
    pub events: u64,
    /// First event's sequence number.
    pub first_seq: u64,
    /// Last event's sequence number.
    pub last_seq: u64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// The largest signed tree size the export is consistent with.
    pub signed_size: u64,
}

/// Why an export failed verification, naming the first bad place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read the export: {0}")]
    Read(String),
    /// A line is not a valid export line.
    #[error("line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// A specific event is wrong.
    #[error("event {seq}: {why}")]
    Event {
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        why: String,
    },
    /// Events in a range do not match a signed checkpoint; no single event shows which.
    #[error(
        "events {from} to {to} do not match the signed checkpoint of size {size}: the log was altered in this range"
    )]
    Range {
        /// First event that may be altered.
        from: u64,
        /// Last event that may be altered.
        to: u64,
        /// The checkpoint that failed.
        size: u64,
    },
    /// A checkpoint's signature or form is wrong.
    #[error("line {line}: {err}")]
    Checkpoint {
        /// 1-based line number.
        line: usize,
        /// The note error.
        err: NoteError,
    },
    /// The file ends before all events it announces.
    #[error(
        "export is truncated: the header announces events up to {expected}, the file ends after {found}"
    )]
    Truncated {
        /// Last sequence number announced.
        expected: u64,
        /// Last sequence number present.
        found: u64,
    },
    /// Events past the last signed checkpoint cannot be trusted.
    #[error("no signed checkpoint covers events after {0}")]
    Unsigned(u64),
}

struct Pending {
    line: usize,
    checkpoint: Checkpoint,
    consistency: Vec<crate::Hash>,
}

/// Verifies an export read from `input` with the log's public key.
pub fn verify(input: impl BufRead, key: &VerifierKey) -> Result<Report, VerifyError> {
    let mut lines = input.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut next = move || -> Result<Option<(usize, ExportLine)>, VerifyError> {
        let Some((n, line)) = lines.next() else {
            return Ok(None);
        };
        let line = line.map_err(|e| VerifyError::Read(e.to_string()))?;
        let parsed = serde_json::from_str(&line).map_err(|e| VerifyError::Line {
            line: n,
            why: format!("not a valid export line: {e}"),
        })?;
        Ok(Some((n, parsed)))
    };
    let line_err = |line: usize, why: String| VerifyError::Line { line, why };

    let (first_seq, last_seq) = match next()? {
        Some((
            _,
            ExportLine::Header {
                format,
                origin,
                first_seq,
                last_seq,
            },
        )) => {
            if format != FORMAT {
                return Err(line_err(
                    1,
                    format!("unknown format `{format}`, expected `{FORMAT}`"),
                ));
            }
            if origin != key.name() {
                return Err(line_err(
                    1,
                    format!(
                        "the export is of log `{origin}`, the key is for `{}`",
                        key.name()
                    ),
                ));
            }
            if first_seq == 0 || last_seq + 1 < first_seq {
                return Err(line_err(
                    1,
                    format!("invalid range {first_seq} to {last_seq}"),
                ));
            }
            (first_seq, last_seq)
        }
        Some((n, _)) => return Err(line_err(n, "the first line must be the header".into())),
        None => return Err(line_err(1, "the export is empty".into())),
    };
    let mut tree = match next()? {
        Some((n, ExportLine::Prefix { size, frontier })) => {
            if size + 1 != first_seq {
                return Err(line_err(
                    n,
                    format!("the prefix has {size} events, the first event is {first_seq}"),
                ));
            }
            let nodes = frontier.into_iter().map(|h| h.0).collect();
            Frontier::from_nodes(size, nodes)
                .ok_or_else(|| line_err(n, "the prefix frontier does not fit its size".into()))?
        }
        Some((n, _)) => return Err(line_err(n, "the second line must be the prefix".into())),
        None => {
            return Err(VerifyError::Truncated {
                expected: last_seq,
                found: first_seq - 1,
            });
        }
    };

    let mut pending: Vec<Pending> = Vec::new();
    let mut first_event = None;
    while let Some((n, line)) = next()? {
        match line {
            ExportLine::Checkpoint { note, consistency } => {
                let checkpoint = key
                    .open(&note)
                    .map_err(|err| VerifyError::Checkpoint { line: n, err })?;
                if checkpoint.size < tree.size() {
                    return Err(line_err(
                        n,
                        format!("checkpoint of size {} precedes the export", checkpoint.size),
                    ));
                }
                let consistency = consistency.into_iter().map(|h: HexHash| h.0).collect();
                pending.push(Pending {
                    line: n,
                    checkpoint,
                    consistency,
                });
            }
            ExportLine::Event { leaf_hash, event } => {
                first_event = Some((n, leaf_hash, event));
                break;
            }
            _ => {
                return Err(line_err(
                    n,
                    "checkpoints and events only, after the prefix".into(),
                ));
            }
        }
    }
    pending.sort_by_key(|p| p.checkpoint.size);
    let mut checks = pending.iter().peekable();
    let mut verified = tree.size();
    let mut checked = 0usize;
    // A checkpoint exactly at the prefix size checks the prefix itself.
    while let Some(p) = checks.next_if(|p| p.checkpoint.size == tree.size()) {
        if p.checkpoint.root != tree.root() {
            return Err(line_err(
                p.line,
                "the prefix does not match this checkpoint".into(),
            ));
        }
        checked += 1;
    }

    let mut current = first_event;
    while let Some((n, recorded, event)) = current.take() {
        let expected = tree.size() + 1;
        if event.seq > expected {
            return Err(VerifyError::Event {
                seq: expected,
                why: format!("missing (the next event in the file is {})", event.seq),
            });
        }
        if event.seq < expected {
            return Err(VerifyError::Event {
                seq: event.seq,
                why: format!("out of order or repeated (expected {expected}, line {n})"),
            });
        }
        if event.seq > last_seq {
            return Err(VerifyError::Event {
                seq: event.seq,
                why: format!("beyond the header's last event {last_seq}"),
            });
        }
        let leaf = event.leaf_hash();
        if leaf != recorded.0 {
            return Err(VerifyError::Event {
                seq: event.seq,
                why: "its content does not match the leaf hash the log recorded".into(),
            });
        }
        tree.push(leaf);
        while let Some(p) = checks.next_if(|p| p.checkpoint.size == tree.size()) {
            if p.checkpoint.root != tree.root() {
                return Err(VerifyError::Range {
                    from: verified + 1,
                    to: tree.size(),
                    size: p.checkpoint.size,
                });
            }
            verified = tree.size();
            checked += 1;
        }
        current = match next()? {
            Some((n, ExportLine::Event { leaf_hash, event })) => Some((n, leaf_hash, event)),
            Some((n, _)) => {
                return Err(line_err(n, "only events may follow the first event".into()));
            }
            None => None,
        };
    }
    if tree.size() < last_seq {
        return Err(VerifyError::Truncated {
            expected: last_seq,
            found: tree.size(),
        });
    }
    let end_root = tree.root();
    let mut signed_size = verified;
    for p in checks {
        let c = &p.checkpoint;
        if !verify_consistency(tree.size(), c.size, &end_root, &c.root, &p.consistency) {
            return Err(VerifyError::Range {
                from: verified + 1,
                to: tree.size(),
                size: c.size,
            });
        }
        checked += 1;
        signed_size = c.size;
    }
    if signed_size < tree.size() {
        return Err(VerifyError::Unsigned(signed_size));
    }
    Ok(Report {
        events: tree.size() + 1 - first_seq,
        first_seq,
        last_seq,
        checkpoints: checked,
        signed_size,
    })
}
