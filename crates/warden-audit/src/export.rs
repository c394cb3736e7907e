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
//!
//! A *selection* is the events of `S..=E` that match a filter, not the whole range:
//!
//! ```text
//! {"type":"header","format":"warden-audit-selection/1","origin":…,"first_seq":S,"last_seq":E,
//!  "filter":{"actor":…,"action":…,"target":…,"outcome":…}}
//! {"type":"checkpoint","note":…}                               one, of size E or more
//! {"type":"event","leaf_hash":hex,"event":{…},"inclusion":[hex, …]}   in order
//! ```
//!
//! Each event carries its inclusion proof in the checkpoint's tree, so each is shown to be in
//! the signed log as recorded, and to match the filter. A selection cannot show that no
//! matching event was left out: only an export of the whole range shows that.

use serde::{Deserialize, Serialize};

use crate::{AuditEvent, Hash};

/// The format name written in the header.
pub const FORMAT: &str = "warden-audit-export/1";

/// The format name written in a selection's header.
pub const SELECTION_FORMAT: &str = "warden-audit-selection/1";

/// Which events of its range a selection holds: those equal to every field given (as the
/// audit log's filters read them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Actor label (`user:alice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Action (`user.create`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Target (`group:ops`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Outcome (`success`, `failure`, `denied`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl Selection {
    /// Whether no field is given (every event matches).
    pub fn is_empty(&self) -> bool {
        self == &Selection::default()
    }

    /// The first field `event` does not match, with the event's value.
    pub fn mismatch(&self, event: &AuditEvent) -> Option<(&'static str, String)> {
        let fields = [
            ("actor", &self.actor, event.actor_label.as_str()),
            ("action", &self.action, event.action.as_str()),
            ("target", &self.target, event.target.as_str()),
            ("outcome", &self.outcome, event.outcome.as_str()),
        ];
        fields.into_iter().find_map(|(name, wanted, value)| {
            let wanted = wanted.as_deref()?;
            (wanted != value).then(|| (name, value.to_owned()))
        })
    }
}

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
        /// A selection's filter.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<Selection>,
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
    let mut out = Vec::with_capacity(640);
    write_event_line(&mut out, event, recorded);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`event_line`] to `out`, without its line break.
pub fn write_event_line(out: &mut Vec<u8>, event: &AuditEvent, recorded: &Hash) {
    out.extend_from_slice(b"{\"type\":\"event\",\"leaf_hash\":\"");
    for b in recorded {
        out.push(digit(b >> 4));
        out.push(digit(b & 0x0f));
    }
    out.extend_from_slice(b"\",\"event\":");
    event.write_canonical(out);
    out.push(b'}');
}

/// A selection's event line: [`event_line`] with the event's inclusion proof in the
/// selection's checkpoint, without its line break.
pub fn write_selected_event_line(out: &mut Vec<u8>, event: &AuditEvent, path: &[Hash]) {
    write_event_line(out, event, &event.leaf_hash());
    out.pop();
    out.extend_from_slice(b",\"inclusion\":[");
    for (i, node) in path.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        for b in node {
            out.push(digit(b >> 4));
            out.push(digit(b & 0x0f));
        }
        out.push(b'"');
    }
    out.extend_from_slice(b"]}");
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
    /// A selection's: the event's inclusion proof.
    #[serde(default)]
    pub inclusion: Option<Vec<HexHash>>,
}

/// A hash written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct HexHash(pub Hash);

impl HexHash {
    /// Reads 64 hex digits.
    pub fn parse(s: &str) -> Result<Self, String> {
        fn nibble(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(format!("a hash is 64 hex digits, got {}", bytes.len()));
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (Some(&high), Some(&low)) = (pair.first(), pair.get(1)) else {
                return Err("a hash is hex digits".to_owned());
            };
            let (Some(high), Some(low)) = (nibble(high), nibble(low)) else {
                return Err("a hash is hex digits".to_owned());
            };
            *o = high << 4 | low;
        }
        Ok(HexHash(out))
    }
}

impl TryFrom<String> for HexHash {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        HexHash::parse(&s)
    }
}

impl<'de> Deserialize<'de> for HexHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Digits;
        impl serde::de::Visitor<'_> for Digits {
            type Value = HexHash;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a hash as 64 hex digits")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HexHash, E> {
                HexHash::parse(s).map_err(E::custom)
            }
        }
        // Read in place: no string is allocated for each of a million leaf hashes.
        d.deserialize_str(Digits)
    }
}

/// A hex digit's character.
fn digit(n: u8) -> u8 {
    if n < 10 { b'0' + n } else { b'a' + n - 10 }
}

impl From<HexHash> for String {
    fn from(h: HexHash) -> String {
        let mut out = String::with_capacity(64);
        for b in h.0 {
            out.push(char::from(digit(b >> 4)));
            out.push(char::from(digit(b & 0x0f)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hashes_read_only_as_64_hex_digits() {
        let text = "00".repeat(31) + "fF";
        assert_eq!(HexHash::parse(&text).unwrap().0[31], 0xff);
        for (bad, why) in [
            ("0".repeat(63), "a hash is 64 hex digits, got 63"),
            ("+f".repeat(32), "a hash is hex digits"),
            ("0g".repeat(32), "a hash is hex digits"),
            ("é".repeat(32), "a hash is hex digits"),
        ] {
            assert_eq!(HexHash::parse(&bad).unwrap_err(), why, "{bad}");
        }
        let from_value: HexHash = serde_json::from_value(serde_json::json!(text)).unwrap();
        assert_eq!(from_value, HexHash::parse(&text).unwrap());
        let err = serde_json::from_str::<HexHash>("\"abc\"").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a hash is 64 hex digits, got 3 at line 1 column 5"
        );
    }

    proptest! {
        #[test]
        fn hashes_read_back_as_written(hash in any::<[u8; 32]>(), text in "\\PC{0,70}") {
            let written = String::from(HexHash(hash));
            prop_assert_eq!(HexHash::parse(&written), Ok(HexHash(hash)));
            let line = event_line(&sample(), &hash);
            let needle = format!("\"leaf_hash\":\"{written}\"");
            prop_assert!(line.contains(&needle));
            // Anything else either is 64 hex digits or is refused.
            if let Ok(h) = HexHash::parse(&text) {
                prop_assert_eq!(String::from(h), text.to_ascii_lowercase());
            }
        }
    }

    fn sample() -> AuditEvent {
        AuditEvent {
            seq: 1,
            time: 2,
            actor: serde_json::json!({"kind": "system"}),
            actor_label: "system".into(),
            auth: "none".into(),
            action: "user.create".into(),
            target: "user:a".into(),
            outcome: crate::Outcome::Success,
            reason: None,
            request_id: "r".into(),
            source: None,
            details: serde_json::json!({}),
        }
    }
}
