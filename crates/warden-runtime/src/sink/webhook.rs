//! Webhooks: chosen events POSTed as they commit, one request per event, as JSON (the
//! canonical event) or as a Slack-compatible message (`{"text": …}`), for notifications such
//! as access requests awaiting a decision. Delivery is at least once, in order; a failing
//! endpoint is retried with backoff and never slows a writer.

use std::time::Duration;

use serde_json::json;
use warden_audit::AuditEvent;

use super::{Sink, SinkError};
use crate::StartError;

/// How a webhook's body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The canonical event JSON.
    Json,
    /// `{"text": "…"}`, which Slack and compatible chat tools post as a message.
    Slack,
}

pub(crate) struct WebhookSink {
    client: reqwest::Client,
    url: url::Url,
    format: Format,
    /// Action names or prefixes ending in `*` (`access.*`); empty: every event.
    actions: Vec<String>,
}

impl WebhookSink {
    /// Errors name the sink, never the URL (a chat webhook's path is its secret).
    pub fn new(
        name: &str,
        url: &str,
        format: Format,
        actions: &[String],
    ) -> Result<Self, StartError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StartError(format!("audit sink `{name}`: invalid webhook URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StartError(format!(
                "audit sink `{name}`: invalid webhook URL: use http:// or https://"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StartError(format!("cannot make the webhook client: {e}")))?;
        Ok(WebhookSink {
            client,
            url: parsed,
            format,
            actions: actions.to_vec(),
        })
    }

    fn wanted(&self, event: &AuditEvent) -> bool {
        self.actions.is_empty()
            || self.actions.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => event.action.starts_with(prefix),
                None => event.action == *a,
            })
    }

    fn body(&self, event: &AuditEvent) -> serde_json::Value {
        match self.format {
            Format::Json => serde_json::to_value(event).unwrap_or_default(),
            Format::Slack => json!({ "text": message(event) }),
        }
    }
}

/// One line a person reads in a chat channel.
fn message(event: &AuditEvent) -> String {
    let d = &event.details;
    let text = |key: &str| {
        d.get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let outcome = match event.outcome {
        warden_audit::Outcome::Success => String::new(),
        other => format!(
            " ({}: {})",
            other.as_str(),
            event.reason.as_deref().unwrap_or("")
        ),
    };
    let what = match event.action.as_str() {
        "access.request" => format!(
            "{} asks for `{}` for {} s: \"{}\" (request {}; `warden request approve {}`)",
            text("requester"),
            event.target.trim_start_matches("group:"),
            d.get("duration_ms")
                .and_then(|v| v.as_i64())
                .unwrap_or_default()
                / 1000,
            text("reason"),
            text("request"),
            text("request"),
        ),
        "access.approve" if d.get("grant").is_some() => format!(
            "{} approved {}'s access to `{}` until {}",
            event.actor_label,
            text("requester"),
            text("group"),
            text("expires_at"),
        ),
        "access.approve" => format!(
            "{} approved {} ({} of {} approvals)",
            event.actor_label,
            event.target,
            d.get("approvals")
                .and_then(|v| v.as_u64())
                .unwrap_or_default(),
            d.get("needed").and_then(|v| v.as_u64()).unwrap_or_default(),
        ),
        "access.deny" => format!(
            "{} denied {}'s request for `{}`: \"{}\"",
            event.actor_label,
            text("requester"),
            text("group"),
            text("reason"),
        ),
        "grant.expire" => format!(
            "{}'s access to `{}` expired",
            event.target.trim_start_matches("user:"),
            text("group"),
        ),
        "break_glass.use" => format!(
            "EMERGENCY ACCESS: break-glass credential `{}` was used on `{}` as `{}` from {} while Warden was unreachable; its after-action review is open (`warden admin break-glass uses --open`)",
            event.target.trim_start_matches("break-glass:"),
            text("host"),
            text("login"),
            text("started_at"),
        ),
        "break_glass.create" => format!(
            "{} made break-glass credential `{}` ({} of {} shares open it; until {}): \"{}\"",
            event.actor_label,
            event.target.trim_start_matches("break-glass:"),
            d.get("threshold")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_default(),
            d.get("shares")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_default(),
            text("expires_at"),
            text("reason"),
        ),
        "vuln.fix.available" => format!(
            "A fix for {} `{}` on `{}` ({}) is out{}: its SLA clock starts (`warden vuln show {}`)",
            text("severity"),
            text("advisory"),
            text("asset"),
            text("title"),
            match event
                .details
                .get("fixed_in")
                .and_then(serde_json::Value::as_str)
            {
                Some(v) => format!(" in {v}"),
                None => String::new(),
            },
            event.target.trim_start_matches("finding:"),
        ),
        "vuln.sla.half" | "vuln.sla.breach" => format!(
            "{} `{}` on `{}` ({}) {}: due {} (`warden vuln show {}`)",
            text("severity"),
            text("advisory"),
            text("asset"),
            text("title"),
            if event.action == "vuln.sla.breach" {
                "is overdue"
            } else {
                "has used half its time"
            },
            text("due_at"),
            event.target.trim_start_matches("finding:"),
        ),
        "vuln.accept.expire" => format!(
            "the accepted risk of {} expired: it is open again",
            event.target,
        ),
        "vuln.report" => format!(
            "{} reported a vulnerability on `{}`: \"{}\"",
            event.actor_label,
            event.target.trim_start_matches("asset:"),
            text("title"),
        ),
        _ => format!("{} {} {}", event.actor_label, event.action, event.target),
    };
    format!("Warden: {what}{outcome}")
}

impl Sink for WebhookSink {
    async fn deliver(&mut self, events: &[AuditEvent]) -> Result<(), SinkError> {
        for event in events.iter().filter(|e| self.wanted(e)) {
            let sent = self
                .client
                .post(self.url.clone())
                .json(&self.body(event))
                .send()
                .await
                .map_err(|e| SinkError(format!("webhook: {}", without_url(e))))?;
            let status = sent.status();
            if !status.is_success() {
                return Err(SinkError(format!(
                    "webhook answered {status} to event {}",
                    event.seq
                )));
            }
        }
        Ok(())
    }
}

/// A request error without its URL, which may hold a secret (Slack's webhook path does).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}
