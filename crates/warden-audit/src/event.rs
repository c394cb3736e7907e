//! The audit event and its canonical form, which is what the tree hashes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Hash, leaf_hash};

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The change was made.
    Success,
    /// The change was refused for a reason of state (already exists, not found).
    Failure,
    /// The actor was not allowed to ask.
    Denied,
}

impl Outcome {
    /// The outcome as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "denied" => Some(Outcome::Denied),
            _ => None,
        }
    }
}

/// A filter's outcome that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome `{0}`: success, failure or denied")]
pub struct UnknownOutcome(pub String);

impl std::str::FromStr for Outcome {
    type Err = UnknownOutcome;

    /// Parses what a caller typed: the stored form, exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::parse(s).ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

/// One audit event: a leaf of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it happened, milliseconds since the Unix epoch.
    pub time: i64,
    /// Who acted: `{"kind": "user", "name": …, "token_id": …, "role": …}` and the like.
    pub actor: Value,
    /// Who acted, as a short label (`user:alice`), for searching.
    pub actor_label: String,
    /// How they authenticated (`api_token`, `unix_socket`, `none`).
    pub auth: String,
    /// What they did (`user.create`).
    pub action: String,
    /// What they did it to (`user:alice`).
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or was denied.
    pub reason: Option<String>,
    /// The request that caused it.
    pub request_id: String,
    /// The remote address.
    pub source: Option<String>,
    /// Action-specific fields.
    pub details: Value,
}

impl AuditEvent {
    /// The canonical JSON the tree hashes: keys sorted at every depth, no white space.
    pub fn canonical(&self) -> String {
        // Every piece written is UTF-8: JSON punctuation and serde_json's output.
        String::from_utf8(self.canonical_bytes()).unwrap_or_default()
    }

    fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_canonical(&mut out);
        out
    }

    /// Appends the canonical JSON to `out`: the fields in key order, written directly
    /// rather than through a [`Value`] of the whole event.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"action\":");
        string(out, &self.action);
        out.extend_from_slice(b",\"actor\":");
        value(out, &self.actor);
        out.extend_from_slice(b",\"actor_label\":");
        string(out, &self.actor_label);
        out.extend_from_slice(b",\"auth\":");
        string(out, &self.auth);
        out.extend_from_slice(b",\"details\":");
        value(out, &self.details);
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.extend_from_slice(b"\",\"reason\":");
        optional(out, self.reason.as_deref());
        out.extend_from_slice(b",\"request_id\":");
        string(out, &self.request_id);
        out.extend_from_slice(b",\"seq\":");
        scalar(out, &self.seq);
        out.extend_from_slice(b",\"source\":");
        optional(out, self.source.as_deref());
        out.extend_from_slice(b",\"target\":");
        string(out, &self.target);
        out.extend_from_slice(b",\"time\":");
        scalar(out, &self.time);
        out.push(b'}');
    }

    /// The event's leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.canonical_bytes())
    }
}

/// JSON with every object's keys sorted and no white space. Sorting here, rather than relying
/// on serde_json's map type, keeps the form stable whatever features other crates enable.
pub fn canonical_json(v: &Value) -> String {
    let mut out = Vec::new();
    value(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// A scalar as serde_json writes it; writing into a `Vec` cannot fail.
fn scalar(out: &mut Vec<u8>, v: &(impl Serialize + ?Sized)) {
    let _ = serde_json::to_writer(out, v);
}

fn string(out: &mut Vec<u8>, s: &str) {
    scalar(out, s);
}

fn optional(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn entries<'v>(out: &mut Vec<u8>, entries: impl Iterator<Item = (&'v String, &'v Value)>) {
    for (i, (key, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, key);
        out.push(b':');
        value(out, v);
    }
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's own map keeps its keys sorted; another one's are sorted here.
            let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b);
            if sorted {
                entries(out, map.iter());
            } else {
                let mut all: Vec<(&String, &Value)> = map.iter().collect();
                all.sort_by(|a, b| a.0.cmp(b.0));
                entries(out, all.into_iter());
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, v);
            }
            out.push(b']');
        }
        scalar_value => scalar(out, scalar_value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The first encoding: the whole event through a `Value`, each object's keys sorted.
    fn reference(e: &AuditEvent) -> String {
        reference_value(&serde_json::to_value(e).unwrap())
    }

    fn reference_value(v: &Value) -> String {
        fn write(value: &Value, out: &mut String) {
            match value {
                Value::Object(map) => {
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    out.push('{');
                    for (i, (key, v)) in entries.into_iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&Value::String(key.clone()).to_string());
                        out.push(':');
                        write(v, out);
                    }
                    out.push('}');
                }
                Value::Array(items) => {
                    out.push('[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write(v, out);
                    }
                    out.push(']');
                }
                scalar => out.push_str(&scalar.to_string()),
            }
        }
        let mut out = String::new();
        write(v, &mut out);
        out
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            "[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}é😀]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("\\PC{0,6}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn any_event() -> impl Strategy<Value = AuditEvent> {
        (
            (
                any::<u64>(),
                any::<i64>(),
                any_value(),
                "\\PC{0,10}",
                "\\PC{0,6}",
            ),
            (
                "\\PC{0,10}",
                "\\PC{0,10}",
                0..3u8,
                prop::option::of("\\PC{0,10}"),
            ),
            ("\\PC{0,8}", prop::option::of("\\PC{0,8}"), any_value()),
        )
            .prop_map(
                |(
                    (seq, time, actor, actor_label, auth),
                    (action, target, outcome, reason),
                    (request_id, source, details),
                )| AuditEvent {
                    seq,
                    time,
                    actor,
                    actor_label,
                    auth,
                    action,
                    target,
                    outcome: [Outcome::Success, Outcome::Failure, Outcome::Denied]
                        [usize::from(outcome)],
                    reason,
                    request_id,
                    source,
                    details,
                },
            )
    }

    proptest! {
        /// The direct encoding writes the same bytes as the first one, so every leaf hash
        /// already in a log still matches.
        #[test]
        fn the_direct_encoding_is_the_reference_encoding(e in any_event()) {
            prop_assert_eq!(e.canonical(), reference(&e));
            prop_assert_eq!(canonical_json(&e.details), reference_value(&e.details));
            prop_assert_eq!(leaf_hash(reference(&e).as_bytes()), e.leaf_hash());
        }
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let e = AuditEvent {
            seq: 1,
            time: 5,
            actor: json!({"role": "admin", "kind": "token"}),
            actor_label: "token:ci".into(),
            auth: "api_token".into(),
            action: "user.create".into(),
            target: "user:alice".into(),
            outcome: Outcome::Success,
            reason: None,
            request_id: "r".into(),
            source: Some("127.0.0.1".into()),
            details: json!({"z": 1, "a": [true, null]}),
        };
        assert_eq!(
            e.canonical(),
            r#"{"action":"user.create","actor":{"kind":"token","role":"admin"},"actor_label":"token:ci","auth":"api_token","details":{"a":[true,null],"z":1},"outcome":"success","reason":null,"request_id":"r","seq":1,"source":"127.0.0.1","target":"user:alice","time":5}"#
        );
        let back: AuditEvent = serde_json::from_str(&e.canonical()).unwrap();
        assert_eq!(back.leaf_hash(), e.leaf_hash());
    }
}
