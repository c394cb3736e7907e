//! Reading an audit event's fields defensively: a field of an unexpected shape is absent.

use serde_json::Value;
use warden_audit::{AuditEvent, Outcome};
use warden_model::Timestamp;

/// Whether the event records a change that was made.
pub(crate) fn succeeded(e: &AuditEvent) -> bool {
    e.outcome == Outcome::Success
}

/// The person who acted, when a person did.
pub(crate) fn person(e: &AuditEvent) -> Option<&str> {
    (e.actor.get("kind")?.as_str()? == "user")
        .then(|| e.actor.get("name")?.as_str())
        .flatten()
}

/// The browser session the actor acted through (`session:ID` tokens), when one.
pub(crate) fn acting_session(e: &AuditEvent) -> Option<&str> {
    e.actor.get("token_id")?.as_str()?.strip_prefix("session:")
}

/// A string detail.
pub(crate) fn text<'e>(e: &'e AuditEvent, key: &str) -> Option<&'e str> {
    e.details.get(key)?.as_str()
}

/// An integer detail.
pub(crate) fn number(e: &AuditEvent, key: &str) -> Option<i64> {
    e.details.get(key)?.as_i64()
}

/// An array detail.
pub(crate) fn list<'e>(e: &'e AuditEvent, key: &str) -> &'e [Value] {
    e.details
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A time detail written as RFC 3339 (`expires_at`, `due_at`), in milliseconds.
pub(crate) fn time(e: &AuditEvent, key: &str) -> Option<i64> {
    let text = text(e, key)?;
    let parsed = humantime::parse_rfc3339_weak(text).ok()?;
    Some(Timestamp::from_system(parsed).as_millis())
}

/// The name after a target's prefix (`user:alice` → `alice` for `user:`).
pub(crate) fn target<'e>(e: &'e AuditEvent, prefix: &str) -> Option<&'e str> {
    e.target.strip_prefix(prefix)
}
