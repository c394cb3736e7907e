//! The export file: JSON lines, in this order.
//!
//! ```text
//! {"type":"header","format":"warden-audit-export/1","origin":…,"first_seq":S,"last_seq":E}
//! {"type":"prefix","size":S-1,"frontier":[hex, …]}          the tree before the first event
//! {"type":"checkpoint","note":…,"consistency":[hex, …]}     every signed checkpoint in range,
//!                                                             and one at or after E
//! {"type":"event","leaf_hash":hex,"event":{…}}               events S..=E in order
//! ```
//!
//! A checkpoint larger than E carries the consistency proof from size E to its size. Each
//! event is written in its canonical form, the exact bytes its leaf hash covers, so the
//! verifier hashes what it reads without re-encoding it.

use serde::{Deserialize, Serialize};

use crate::{AuditEvent, Hash};

/// The format name written in the header.
pub const FORMAT: &str = "warden-audit-export/1";

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    /// What the file holds.
    Header {
        /// [`FORMAT`].
        format: String,
        /// The log's origin.
        origin: String,
        /// First event's sequence number.
        first_seq: u64,
        /// Last event's sequence number (`first_seq - 1` when there are none).
        last_seq: u64,
    },
    /// The tree before the first event, as its frontier nodes.
    Prefix {
        /// Leaves before the first event.
        size: u64,
        /// Frontier node hashes, hex, largest subtree first.
        frontier: Vec<HexHash>,
    },
    /// A signed checkpoint.
    Checkpoint {
        /// The signed note.
        note: String,
        /// For a checkpoint past the last event: the consistency proof from `last_seq`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        consistency: Vec<HexHash>,
    },
}

/// One event line: the canonical event and the leaf hash the log recorded for it.
pub fn event_line(event: &AuditEvent, recorded: &Hash) -> String {
    format!(
        "{{\"type\":\"event\",\"leaf_hash\":\"{}\",\"event\":{}}}",
        String::from(HexHash(*recorded)),
        event.canonical()
    )
}

/// An event line as read back, borrowing the raw event bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventLine<'a> {
    #[serde(rename = "type")]
    pub _kind: &'a str,
    pub leaf_hash: HexHash,
    #[serde(borrow)]
    pub event: &'a serde_json::value::RawValue,
}

/// A hash written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HexHash(pub Hash);

impl TryFrom<String> for HexHash {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let mut out = [0u8; 32];
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(format!("a hash is 64 hex digits, got {}", bytes.len()));
        }
        for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| "a hash is hex digits".to_owned())?;
            *o = u8::from_str_radix(text, 16).map_err(|_| "a hash is hex digits".to_owned())?;
        }
        Ok(HexHash(out))
    }
}

impl From<HexHash> for String {
    fn from(h: HexHash) -> String {
        fn digit(n: u8) -> char {
            char::from(if n < 10 { b'0' + n } else { b'a' + n - 10 })
        }
        let mut out = String::with_capacity(64);
        for b in h.0 {
            out.push(digit(b >> 4));
            out.push(digit(b & 0x0f));
        }
        out
    }
}
