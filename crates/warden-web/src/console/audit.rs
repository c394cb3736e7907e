//! The audit log: filtered, newest first, with the latest signed checkpoint and, on asking,
//! proof that one event is in the signed log.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{Parts, Section, Visitor, open, text, when};
use crate::Web;

/// Events on a page.
const PAGE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filter {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    outcome: Option<String>,
    /// Older than this sequence number (the next page).
    before: Option<u64>,
    /// Prove this event's inclusion.
    verify: Option<u64>,
}

fn some(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /console/audit`.
pub(crate) async fn log(
    State(app): State<Web>,
    Query(filter): Query<Filter>,
    parts: Parts,
) -> Response {
    let q = "query($actor: String, $action: String, $target: String, $outcome: String, $before: Int, $first: Int!) {
      auditCheckpoint { size time note }
      auditEvents(actor: $actor, action: $action, target: $target, outcome: $outcome, beforeSeq: $before,
        newestFirst: true, first: $first) { seq time actor action target outcome reason source requestId }
    }";
    let vars = json!({
        "actor": some(&filter.actor), "action": some(&filter.action), "target": some(&filter.target),
        "outcome": some(&filter.outcome), "before": filter.before, "first": PAGE,
    });
    let (v, data) = match open(&app, parts, Section::Audit, q, vars).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let checkpoint = &data["auditCheckpoint"];
    let signed = checkpoint["note"]
        .as_str()
        .map(|note| app.audit.verifier().open(note));
    let proof = match filter.verify {
        Some(seq) => Some(prove(&app, &v, seq, signed.as_ref()).await),
        None => None,
    };
    let empty = Vec::new();
    let events = data["auditEvents"].as_array().unwrap_or(&empty);
    let older = events
        .last()
        .and_then(|e| e["seq"].as_u64())
        .filter(|_| events.len() == PAGE as usize);
    let filters: Vec<(&str, &str)> = [
        ("actor", some(&filter.actor)),
        ("action", some(&filter.action)),
        ("target", some(&filter.target)),
        ("outcome", some(&filter.outcome)),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let keep = |before: Option<u64>, verify: Option<u64>| {
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (k, value) in &filters {
            pairs.append_pair(k, value);
        }
        if let Some(b) = before {
            pairs.append_pair("before", &b.to_string());
        }
        if let Some(s) = verify {
            pairs.append_pair("verify", &s.to_string());
        }
        format!("/console/audit?{}", pairs.finish())
    };
    let body = html! {
        section aria-labelledby="checkpoint-h" {
            h2 #checkpoint-h { "Latest checkpoint" }
            @match &signed {
                None => p.muted { "No event yet." },
                Some(Ok(c)) => div.cards {
                    div.card { "Events signed" strong #checkpoint-size { (c.size) } }
                    div.card { "Signed at" strong { (when(&checkpoint["time"])) } }
                    div.card { "Signature" strong.verified #checkpoint-status { "valid" } span.muted { (c.origin) } }
                    div.card { "Root" strong.mono { (hex(&c.root).get(..16).unwrap_or("")) "…" } }
                },
                Some(Err(e)) => p.notice.error #checkpoint-status role="alert" { "The latest checkpoint does not verify with this server's key: " (e.to_string()) },
            }
            p.muted { "Check the whole log offline with " code { "warden audit verify" } " against the public key at " a href="/v1/audit/public_key" { "/v1/audit/public_key" } "." }
            @if let Some(p) = &proof { (p) }
        }
        section aria-labelledby="filter-h" {
            h2 #filter-h { "Filter" }
            form.filters method="get" action="/console/audit" {
                div.field { label for="actor" { "Actor" } input #actor name="actor" value=(some(&filter.actor).unwrap_or("")) placeholder="user:alice"; }
                div.field { label for="action" { "Action" } input #action name="action" value=(some(&filter.action).unwrap_or("")) placeholder="access.approve"; }
                div.field { label for="target" { "Target" } input #target name="target" value=(some(&filter.target).unwrap_or("")) placeholder="group:ops"; }
                div.field { label for="outcome" { "Outcome" }
                    select #outcome name="outcome" {
                        @for o in ["", "success", "failure", "denied"] {
                            option value=(o) selected[some(&filter.outcome) == Some(o)] { @if o.is_empty() { "any" } @else { (o) } }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
        }
        section aria-labelledby="events-h" {
            h2 #events-h { "Events, newest first" }
            form.filters #export method="get" action="/console/audit/export" {
                @for (name, value) in &filters {
                    input type="hidden" name=(name) value=(value);
                }
                label for="since" { "Export from" }
                input #since type="datetime-local" name="since" step="1";
                label for="until" { "to" }
                input #until type="datetime-local" name="until" step="1";
                button type="submit" { "Export (JSON lines)" }
                @if filters.is_empty() {
                    span.muted { " every event in the period (UTC), with the checkpoints and proofs " code { "warden audit verify" } " checks; empty fields: from the start, to now" }
                } @else {
                    span.muted #export-selection { " the events in the period (UTC) that match the filter ("
                        @for (i, (name, value)) in filters.iter().enumerate() { @if i > 0 { ", " } (name) " " (value) }
                        "), each with its proof of inclusion in the signed log, which " code { "warden audit verify" } " checks; empty fields: from the start, to now" }
                }
            }
            @if events.is_empty() { p.muted { "No event matches." } } @else {
                div.scroll { table #audit-events {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Time" } th scope="col" { "Actor" } th scope="col" { "Action" }
                        th scope="col" { "Target" } th scope="col" { "Outcome" } th scope="col" { "From" } th scope="col" { "Proof" } } }
                    tbody { @for e in events {
                        @let outcome = text(&e["outcome"]);
                        tr {
                            td { (text(&e["seq"])) }
                            td { (when(&e["time"])) }
                            td { (text(&e["actor"])) }
                            td { code { (text(&e["action"])) } }
                            td { (text(&e["target"])) }
                            td { span class={ "outcome-" (outcome) } { (outcome) } @if let Some(r) = e["reason"].as_str() { br; span.muted { (r) } } }
                            td { (text(&e["source"])) }
                            td { a href=(keep(filter.before, e["seq"].as_u64())) aria-label={ "Verify event " (text(&e["seq"])) } { "verify" } }
                        }
                    } }
                } }
            }
            nav.pager aria-label="Pages" {
                @if filter.before.is_some() { a href=(keep(None, None)) { "Newest" } }
                @if let Some(seq) = older { a href=(keep(Some(seq), None)) rel="next" { "Older" } }
            }
        }
    };
    v.ok(Section::Audit, "Audit log", body)
}

fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Proves event `seq` is in the signed log: its leaf hash (from the stored event) and its
/// inclusion path lead to the checkpoint's signed root.
async fn prove(
    app: &Web,
    v: &Visitor,
    seq: u64,
    signed: Option<&Result<warden_audit::Checkpoint, warden_audit::NoteError>>,
) -> Markup {
    let Some(Ok(checkpoint)) = signed else {
        return html! { p.notice.error role="alert" { "There is no valid checkpoint to verify against." } };
    };
    let outcome = async {
        if seq == 0 || seq > checkpoint.size {
            return Err(format!(
                "event #{seq} is not in the signed log of {} events",
                checkpoint.size
            ));
        }
        let event = app
            .audit
            .event(seq)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "console: event read failed");
                format!("internal error; quote request id {}", v.audit.request_id)
            })?
            .ok_or_else(|| format!("event #{seq} is missing from the store"))?;
        let path = app
            .audit
            .inclusion(seq, checkpoint.size)
            .await
            .map_err(|e| format!("no inclusion proof: {e}"))?;
        if warden_audit::verify_inclusion(
            seq - 1,
            checkpoint.size,
            &event.leaf_hash(),
            &path,
            &checkpoint.root,
        ) {
            Ok(path.len())
        } else {
            Err(format!(
                "event #{seq} does not hash into the signed root: the stored event or tree was changed"
            ))
        }
    }
    .await;
    match outcome {
        Ok(hashes) => html! {
            p.notice.ok #proof role="status" {
                "Event #" (seq) " is in the signed log: its hash and an inclusion path of " (hashes)
                " hashes lead to the root of checkpoint " (checkpoint.size) ", whose signature is valid."
            }
        },
        Err(e) => html! { p.notice.error #proof role="alert" { (e) } },
    }
}
