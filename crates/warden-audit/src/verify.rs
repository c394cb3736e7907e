//! The offline verifier: reads an export and checks it against the log's public key alone.

use std::io::BufRead;

use crate::export::{EventLine, HexHash};
use crate::{
    AuditEvent, Checkpoint, ExportLine, FORMAT, Frontier, NoteError, SELECTION_FORMAT, Selection,
    VerifierKey, leaf_hash, verify_consistency, verify_inclusion,
};

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
    /// A selection's filter: the events are those of the range that match it, each proven
    /// in the log, but not shown to be all of them.
    pub selection: Option<Selection>,
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

/// Reads lines into one reused buffer: no allocation per line.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    number: usize,
}

impl<R: BufRead> Lines<R> {
    /// Moves to the next line; false at the end of the input.
    fn advance(&mut self) -> Result<bool, VerifyError> {
        self.buf.clear();
        let read = self
            .input
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| VerifyError::Read(e.to_string()))?;
        if read == 0 {
            return Ok(false);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        self.number += 1;
        Ok(true)
    }

    fn parse<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, VerifyError> {
        serde_json::from_slice(&self.buf).map_err(|e| VerifyError::Line {
            line: self.number,
            why: format!("not a valid export line: {e}"),
        })
    }

    fn is_event(&self) -> bool {
        self.buf.starts_with(b"{\"type\":\"event\"")
    }

    /// Collects the current line and those after it, up to about `bytes`, into `batch`
    /// (separated by line breaks); false at the input's end.
    fn batch(&mut self, batch: &mut Vec<u8>, bytes: usize) -> Result<bool, VerifyError> {
        batch.clear();
        batch.extend_from_slice(&self.buf);
        while batch.len() < bytes {
            if !self.advance()? {
                return Ok(false);
            }
            batch.push(b'\n');
            batch.extend_from_slice(&self.buf);
        }
        self.advance()
    }
}

/// Just the sequence number of an event.
#[derive(serde::Deserialize)]
struct Seq {
    seq: u64,
}

/// A batch of event lines holds about this many bytes when the events are not kept.
const BATCH_BYTES: usize = 8 << 20;

/// An event line as read: its number, sequence number, leaf hash as computed and as
/// recorded, and why its event does not read when asked to parse it and it did not.
struct Read {
    line: usize,
    seq: u64,
    leaf: crate::Hash,
    recorded: crate::Hash,
    bad: Option<String>,
}

/// Reads one event line (number `n`), parsing its event when `parse`.
fn read_line(
    bytes: &[u8],
    n: usize,
    parse: bool,
) -> Result<(Read, Option<AuditEvent>), VerifyError> {
    let line_err = |why: String| VerifyError::Line { line: n, why };
    let not_valid = |e: serde_json::Error| line_err(format!("not a valid export line: {e}"));
    if !bytes.starts_with(b"{\"type\":\"event\"") {
        let _: ExportLine = serde_json::from_slice(bytes).map_err(not_valid)?;
        return Err(line_err("only events may follow the first event".into()));
    }
    let line: EventLine<'_> = serde_json::from_slice(bytes).map_err(not_valid)?;
    if line.inclusion.is_some() {
        return Err(line_err(
            "an export of a whole range carries no inclusion proofs".into(),
        ));
    }
    let raw = line.event.get();
    // The file holds the canonical bytes: hash them as they are.
    let leaf = leaf_hash(raw.as_bytes());
    let read = |seq, bad| Read {
        line: n,
        seq,
        leaf,
        recorded: line.leaf_hash.0,
        bad,
    };
    if parse {
        match serde_json::from_str::<AuditEvent>(raw) {
            Ok(event) => return Ok((read(event.seq, None), Some(event))),
            Err(e) => {
                let bad = Some(format!("not a valid event: {e}"));
                if let Ok(Seq { seq }) = serde_json::from_str(raw) {
                    return Ok((read(seq, bad), None));
                }
            }
        }
    }
    let Seq { seq } = serde_json::from_str(raw)
        .map_err(|e| line_err(format!("the event has no valid sequence number: {e}")))?;
    Ok((read(seq, None), None))
}

/// Reads a batch of lines (the first numbered `first`), a share of them on each core: what
/// each line gave, in order, up to the first line that failed.
fn read_lines(
    batch: &[u8],
    first: usize,
    parse: bool,
) -> Vec<Result<(Read, Option<AuditEvent>), VerifyError>> {
    let lines: Vec<&[u8]> = batch.split(|b| *b == b'\n').collect();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let share = lines.len().div_ceil(cores).max(1);
    let read_share = |at: usize, share: &[&[u8]]| {
        let mut out = Vec::with_capacity(share.len());
        for (i, bytes) in share.iter().enumerate() {
            let read = read_line(bytes, first + at + i, parse);
            let failed = read.is_err();
            out.push(read);
            if failed {
                break;
            }
        }
        out
    };
    std::thread::scope(|scope| {
        let mut shares = lines.chunks(share).enumerate();
        let mine = shares.next();
        let others: Vec<_> = shares
            .map(|(i, s)| scope.spawn(move || read_share(i * share, s)))
            .collect();
        let mut out = mine.map(|(_, s)| read_share(0, s)).unwrap_or_default();
        for other in others {
            // A share stops at its first failure; later shares are not reached.
            if out.last().is_some_and(Result::is_err) {
                break;
            }
            out.extend(
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        out
    })
}

/// The header's first and last sequence numbers, checked against the key, and a selection's
/// filter.
fn header<R: BufRead>(
    lines: &Lines<R>,
    key: &VerifierKey,
) -> Result<(u64, u64, Option<Selection>), VerifyError> {
    let line_err = |line: usize, why: String| VerifyError::Line { line, why };
    match lines.parse()? {
        ExportLine::Header {
            format,
            origin,
            first_seq,
            last_seq,
            filter,
        } => {
            let filter = match (format.as_str(), filter) {
                (FORMAT, None) => None,
                (SELECTION_FORMAT, Some(filter)) => Some(filter),
                (FORMAT, Some(_)) => {
                    return Err(line_err(
                        1,
                        "an export of a whole range has no filter".into(),
                    ));
                }
                (SELECTION_FORMAT, None) => {
                    return Err(line_err(1, "a selection's header names its filter".into()));
                }
                _ => {
                    return Err(line_err(
                        1,
                        format!(
                            "unknown format `{format}`, expected `{FORMAT}` or `{SELECTION_FORMAT}`"
                        ),
                    ));
                }
            };
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
            Ok((first_seq, last_seq, filter))
        }
        _ => Err(line_err(1, "the first line must be the header".into())),
    }
}

/// Verifies an export read from `input` with the log's public key.
pub fn verify(input: impl BufRead, key: &VerifierKey) -> Result<Report, VerifyError> {
    check(input, key, BATCH_BYTES, &mut None)
}

/// Verifies an export as [`verify`] does and hands each event, parsed, to `each` in order
/// once it has checked: an event that does not read as an [`AuditEvent`] fails the export.
/// The events are read all at once, a share on each core (they are kept anyway).
pub fn verify_events(
    input: impl BufRead,
    key: &VerifierKey,
    mut each: impl FnMut(AuditEvent),
) -> Result<Report, VerifyError> {
    check(input, key, usize::MAX, &mut Some(&mut each))
}

/// [`verify`], reading the events in batches of about `batch_bytes`, and parsing each for
/// `each` when there is one.
fn check(
    input: impl BufRead,
    key: &VerifierKey,
    batch_bytes: usize,
    each: &mut Option<&mut dyn FnMut(AuditEvent)>,
) -> Result<Report, VerifyError> {
    let parse = each.is_some();
    let mut lines = Lines {
        input,
        buf: Vec::new(),
        number: 0,
    };
    let line_err = |line: usize, why: String| VerifyError::Line { line, why };

    if !lines.advance()? {
        return Err(line_err(1, "the export is empty".into()));
    }
    let (first_seq, last_seq, filter) = header(&lines, key)?;
    if let Some(filter) = filter {
        return check_selection(lines, key, (first_seq, last_seq), filter, each);
    }
    if !lines.advance()? {
        return Err(VerifyError::Truncated {
            expected: last_seq,
            found: first_seq - 1,
        });
    }
    let mut tree = match lines.parse()? {
        ExportLine::Prefix { size, frontier } => {
            if size + 1 != first_seq {
                return Err(line_err(
                    lines.number,
                    format!("the prefix has {size} events, the first event is {first_seq}"),
                ));
            }
            let nodes = frontier.into_iter().map(|h| h.0).collect();
            Frontier::from_nodes(size, nodes).ok_or_else(|| {
                line_err(
                    lines.number,
                    "the prefix frontier does not fit its size".into(),
                )
            })?
        }
        _ => {
            return Err(line_err(
                lines.number,
                "the second line must be the prefix".into(),
            ));
        }
    };

    let mut pending: Vec<Pending> = Vec::new();
    let mut more = lines.advance()?;
    while more && !lines.is_event() {
        let n = lines.number;
        match lines.parse()? {
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
            _ => {
                return Err(line_err(
                    n,
                    "checkpoints and events only, after the prefix".into(),
                ));
            }
        }
        more = lines.advance()?;
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

    // The event lines are parsed and hashed in batches on every core, then checked in order.
    let mut batch = Vec::new();
    while more {
        let first_line = lines.number;
        more = lines.batch(&mut batch, batch_bytes)?;
        for read in read_lines(&batch, first_line, parse) {
            let (
                Read {
                    line: n,
                    seq,
                    leaf,
                    recorded,
                    bad,
                },
                event,
            ) = read?;
            let expected = tree.size() + 1;
            if seq > expected {
                return Err(VerifyError::Event {
                    seq: expected,
                    why: format!("missing (the next event in the file is {seq})"),
                });
            }
            if seq < expected {
                return Err(VerifyError::Event {
                    seq,
                    why: format!("out of order or repeated (expected {expected}, line {n})"),
                });
            }
            if seq > last_seq {
                return Err(VerifyError::Event {
                    seq,
                    why: format!("beyond the header's last event {last_seq}"),
                });
            }
            if leaf != recorded {
                return Err(VerifyError::Event {
                    seq,
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
            if let Some(why) = bad {
                return Err(line_err(n, why));
            }
            if let (Some(each), Some(event)) = (each.as_mut(), event) {
                each(event);
            }
        }
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
        selection: None,
    })
}

/// Checks a selection (see [`crate::export`]): its one checkpoint's signature, then each
/// event's order within the range, leaf hash, inclusion proof and match with the filter.
fn check_selection<R: BufRead>(
    mut lines: Lines<R>,
    key: &VerifierKey,
    (first_seq, last_seq): (u64, u64),
    filter: Selection,
    each: &mut Option<&mut dyn FnMut(AuditEvent)>,
) -> Result<Report, VerifyError> {
    let line_err = |line: usize, why: String| VerifyError::Line { line, why };
    let second = "the second line of a selection must be its checkpoint";
    if !lines.advance()? {
        return Err(line_err(2, second.into()));
    }
    let checkpoint = match lines.parse()? {
        ExportLine::Checkpoint { note, consistency } if consistency.is_empty() => {
            key.open(&note)
                .map_err(|err| VerifyError::Checkpoint { line: 2, err })?
        }
        _ => return Err(line_err(2, second.into())),
    };
    if checkpoint.size < last_seq {
        return Err(VerifyError::Unsigned(checkpoint.size));
    }
    let mut previous = first_seq - 1;
    let mut events = 0;
    while lines.advance()? {
        let n = lines.number;
        if !lines.is_event() {
            return Err(line_err(n, "only events may follow the checkpoint".into()));
        }
        let line: EventLine<'_> = lines.parse()?;
        let raw = line.event.get();
        let leaf = leaf_hash(raw.as_bytes());
        let event: AuditEvent = serde_json::from_str(raw)
            .map_err(|e| line_err(n, format!("not a valid event: {e}")))?;
        let seq = event.seq;
        let wrong = |why: String| Err(VerifyError::Event { seq, why });
        if seq < first_seq || seq > last_seq {
            return wrong(format!(
                "outside the header's range {first_seq} to {last_seq}"
            ));
        }
        if seq <= previous {
            return wrong(format!(
                "out of order or repeated (after {previous}, line {n})"
            ));
        }
        if leaf != line.leaf_hash.0 {
            return wrong("its content does not match the leaf hash the log recorded".into());
        }
        let Some(path) = line.inclusion else {
            return Err(line_err(
                n,
                "a selection's event carries its inclusion proof".into(),
            ));
        };
        let path: Vec<crate::Hash> = path.into_iter().map(|h| h.0).collect();
        if !verify_inclusion(seq - 1, checkpoint.size, &leaf, &path, &checkpoint.root) {
            return wrong(format!(
                "not in the signed log of {} events: its inclusion proof does not lead to the checkpoint",
                checkpoint.size
            ));
        }
        if let Some((field, value)) = filter.mismatch(&event) {
            return wrong(format!(
                "does not match the selection: its {field} is `{value}`"
            ));
        }
        previous = seq;
        events += 1;
        if let Some(each) = each.as_mut() {
            each(event);
        }
    }
    Ok(Report {
        events,
        first_seq,
        last_seq,
        checkpoints: 1,
        signed_size: checkpoint.size,
        selection: Some(filter),
    })
}
