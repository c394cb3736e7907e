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
        serde_json::to_value(self)
            .map(|v| canonical_json(&v))
            .unwrap_or_default()
    }

    /// The event's leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(self.canonical().as_bytes())
    }
}

/// JSON with every object's keys sorted and no white space. Sorting here, rather than relying
/// on serde_json's map type, keeps the form stable whatever features other crates enable.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
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
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
