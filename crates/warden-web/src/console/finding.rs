//! A finding's page: what it is, its disclosed and effective rating, its SLA clock and
//! history, and the triage decisions (re-rate, accept the risk until a date, call it a false
//! positive, reopen), each with its required justification. A decision goes through the same
//! GraphQL mutation as `warden vuln rate|accept|false-positive|reopen`; a refused one shows
//! the API's one-line message beside the form it came from, and changes nothing.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Done, Failure, Parts, Problem, Section, Visitor, allowed, beside, redirect, submitted, text,
    when,
};
use crate::Web;
use crate::graphql::Capability;

const FINDING: &str = "query($id: Int!) { vulnFinding(id: $id) { id asset advisory aliases package location
  fixedIn noFix fixSeenAt title details source disclosedSeverity cvss severity state firstSeen clockStart dueAt
  secondsRemaining overdue fixedAt acceptedUntil decidedBy decidedAt decisionReason ratedBy ratedAt ratingReason
  scanners history { at actor change detail } } }";

/// `GET /console/vulns/{id}`: the finding, and the decisions the visitor may take on it.
pub(crate) async fn show(
    State(app): State<Web>,
    Path(id): Path<String>,
    Query(done): Query<Done>,
    parts: Parts,
) -> Response {
    let v = match allowed(&app, parts, Section::Vulns).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = number(&id) else {
        return v.refusal(StatusCode::NOT_FOUND, Section::Vulns, &unknown(&id));
    };
    match read(&app, &v, id).await {
        Ok(f) => page(&v, StatusCode::OK, &f, &done, None, None),
        Err(r) => r,
    }
}

/// A decision posted from a finding's page.
#[derive(Debug, Deserialize)]
pub(crate) struct Decision {
    csrf: String,
    /// `rate`, `accept`, `false_positive` or `reopen`.
    decision: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    reason: String,
    /// How many changes the finding had when the form was shown.
    seen: String,
}

/// `POST /console/vulns/{id}`: one triage decision, as the visitor, through the API.
pub(crate) async fn decide(
    State(app): State<Web>,
    Path(id): Path<String>,
    parts: Parts,
    axum::Form(form): axum::Form<Decision>,
) -> Response {
    let action = match form.decision.as_str() {
        "rate" => "vuln.rate",
        "accept" => "vuln.accept",
        "false_positive" => "vuln.false_positive",
        _ => "vuln.reopen",
    };
    let v = match submitted(&app, parts, Section::Vulns, action, &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(id) = number(&id) else {
        return v.refusal(StatusCode::NOT_FOUND, Section::Vulns, &unknown(&id));
    };
    // What the form was shown with: the store refuses the decision as stale if the finding
    // has had another change since.
    let Ok(seen) = form.seen.trim().parse::<i64>() else {
        return v.refusal(
            StatusCode::BAD_REQUEST,
            Section::Vulns,
            "the form does not say which changes it was shown with: read the finding again, then decide",
        );
    };
    let (mutation, vars) = match form.decision.as_str() {
        "rate" => (
            "mutation($id: Int!, $severity: String!, $reason: String!, $seen: Int) { rateFinding(id: $id, severity: $severity, reason: $reason, seenChanges: $seen) { id } }",
            json!({ "id": id, "severity": form.severity, "reason": form.reason, "seen": seen }),
        ),
        "accept" => (
            "mutation($id: Int!, $until: String!, $reason: String!, $seen: Int) { acceptFindingRisk(id: $id, until: $until, reason: $reason, seenChanges: $seen) { id } }",
            json!({ "id": id, "until": form.until, "reason": form.reason, "seen": seen }),
        ),
        "false_positive" => (
            "mutation($id: Int!, $reason: String!, $seen: Int) { markFindingFalsePositive(id: $id, reason: $reason, seenChanges: $seen) { id } }",
            json!({ "id": id, "reason": form.reason, "seen": seen }),
        ),
        "reopen" => (
            "mutation($id: Int!, $reason: String!, $seen: Int) { reopenFinding(id: $id, reason: $reason, seenChanges: $seen) { id } }",
            json!({ "id": id, "reason": form.reason, "seen": seen }),
        ),
        other => {
            return v.refusal(
                StatusCode::BAD_REQUEST,
                Section::Vulns,
                &format!("unknown decision `{other}`: rate, accept, false_positive or reopen"),
            );
        }
    };
    let (status, message) = match v.graphql(&app, mutation, vars).await {
        Ok(_) => return redirect(&format!("/console/vulns/{id}?done=triaged")),
        Err(Failure::Refused(message)) => (StatusCode::BAD_REQUEST, message),
        Err(Failure::Stale(message)) => (StatusCode::CONFLICT, message),
        Err(other) => return v.failed(Section::Vulns, other),
    };
    // Shown again as it is now, with the refusal beside the form.
    let f = match read(&app, &v, id).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let problem = Problem {
        form: &form.decision,
        message: &message,
    };
    page(
        &v,
        status,
        &f,
        &Done::default(),
        Some(&problem),
        Some(&form),
    )
}

fn number(id: &str) -> Option<i64> {
    id.parse::<i64>().ok().filter(|n| *n > 0)
}

fn unknown(id: &str) -> String {
    format!("no finding `{id}`: the Vulnerabilities page lists them")
}

/// The finding as the visitor may see it, or the page saying why not.
async fn read(app: &Web, v: &Visitor, id: i64) -> Result<Value, Response> {
    match v.graphql(app, FINDING, json!({ "id": id })).await {
        Ok(data) if data["vulnFinding"].is_null() => Err(v.refusal(
            StatusCode::NOT_FOUND,
            Section::Vulns,
            &format!("finding `{id}` not found"),
        )),
        Ok(mut data) => Ok(data["vulnFinding"].take()),
        Err(Failure::Refused(m)) => Err(v.refusal(StatusCode::NOT_FOUND, Section::Vulns, &m)),
        Err(f) => Err(v.failed(Section::Vulns, f)),
    }
}

/// Where an advisory is published, for the ids whose home is known.
fn advisory_link(id: &str) -> Option<String> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    let homes = [
        ("CVE-", "https://nvd.nist.gov/vuln/detail/"),
        ("GHSA-", "https://github.com/advisories/"),
        ("RUSTSEC-", "https://rustsec.org/advisories/"),
        ("GO-", "https://pkg.go.dev/vuln/"),
        ("PYSEC-", "https://osv.dev/vulnerability/"),
        ("OSV-", "https://osv.dev/vulnerability/"),
    ];
    homes
        .iter()
        .find(|(prefix, _)| id.starts_with(prefix))
        .map(|(prefix, home)| {
            if *prefix == "RUSTSEC-" {
                format!("{home}{id}.html")
            } else {
                format!("{home}{id}")
            }
        })
}

fn advisory(id: &Value) -> Markup {
    let id = text(id);
    html! {
        @if let Some(href) = advisory_link(&id) {
            a href=(href) rel="noreferrer" { code { (id) } }
        } @else { code { (id) } }
    }
}

fn severity(s: &Value) -> Markup {
    html! {
        @if s.is_null() { span.sev-unrated { "unrated" } }
        @else { span class={ "sev-" (text(s)) } { (text(s)) } }
    }
}

/// The SLA clock, in words.
fn clock(f: &Value) -> Markup {
    let remaining = f["secondsRemaining"].as_i64();
    html! {
        @match (f["state"].as_str(), remaining) {
            (Some("no_fix"), _) => span.muted { "stopped until a fix is published" },
            (_, Some(s)) if s < 0 => span.overdue { "late by " (super::spoken(std::time::Duration::from_secs(s.unsigned_abs()))) },
            (_, Some(s)) => { (super::spoken(std::time::Duration::from_secs(s.unsigned_abs()))) " left" },
            _ => span.muted { "not running (" (super::vulns::state_label(&text(&f["state"]))) ")" },
        }
    }
}

fn page(
    v: &Visitor,
    status: StatusCode,
    f: &Value,
    done: &Done,
    problem: Option<&Problem<'_>>,
    typed: Option<&Decision>,
) -> Response {
    let empty = Vec::new();
    // What was typed into the refused form, kept for its fields.
    let typed_in = |form: &str| typed.filter(|t| t.decision == form);
    let id = text(&f["id"]);
    let history = f["history"].as_array().unwrap_or(&empty);
    let seen = history.len().to_string();
    let state = text(&f["state"]);
    let live = matches!(state.as_str(), "open" | "triage" | "no_fix");
    let manage = v.may(Capability::ManageVulns);
    let action = format!("/console/vulns/{id}");
    let reason = |form: &str| {
        let (bad, described) = super::invalid(problem, form);
        html! {
            div.field {
                label for={ (form) "-reason" } { "Justification" }
                input id={ (form) "-reason" } type="text" name="reason" required maxlength="500" size="48"
                    value=[typed_in(form).map(|t| t.reason.as_str())]
                    aria-invalid=[bad] aria-describedby=[described];
            }
        }
    };
    let hidden = |decision: &str| {
        html! {
            input type="hidden" name="csrf" value=(v.csrf);
            input type="hidden" name="seen" value=(seen);
            input type="hidden" name="decision" value=(decision);
        }
    };
    let body = html! {
        (super::flash(done))
        p { a href="/console/vulns" { "← All findings" } }
        section #finding aria-label="The finding" {
            dl {
                dt { "Advisory" } dd { (advisory(&f["advisory"])) @for a in f["aliases"].as_array().unwrap_or(&empty) { " " (advisory(a)) } }
                dt { "Asset" } dd { a href={ "/console/vulns?asset=" (text(&f["asset"])) } { (text(&f["asset"])) } }
                dt { "Where" } dd { (text(&f["package"])) " " (text(&f["location"])) }
                dt { "Fix" } dd { @if let Some(fix) = f["fixedIn"].as_str() { "fixed in " code { (fix) } } @else { span.muted { "no fixed version published" } } }
                dt { "Disclosed rating" } dd { (severity(&f["disclosedSeverity"])) @if let Some(cvss) = f["cvss"].as_str() { " " code { (cvss) } } }
                dt { "Effective rating" } dd #effective { (severity(&f["severity"]))
                    @if !f["ratedBy"].is_null() { span.muted { " — re-rated by " (text(&f["ratedBy"])) " " (when(&f["ratedAt"])) ": " (text(&f["ratingReason"])) } } }
                dt { "State" } dd #state { (super::vulns::state_label(&state))
                    @if f["overdue"] == true { " " span.overdue { "overdue" } }
                    @if let Some(until) = f["acceptedUntil"].as_str().filter(|_| state == "accepted") { " until " (when(&json!(until))) }
                    @if !f["decidedBy"].is_null() { span.muted { " — by " (text(&f["decidedBy"])) ": " (text(&f["decisionReason"])) } } }
                dt { "First seen" } dd { (when(&f["firstSeen"])) " (" (text(&f["source"])) ")" }
                dt { "SLA clock" } dd #clock { (clock(f))
                    @if !f["dueAt"].is_null() { " — due " (when(&f["dueAt"])) }
                    @if !f["fixSeenAt"].is_null() { br; span.muted { "counted from the fix, seen " (when(&f["fixSeenAt"])) } } }
                dt { "Seen by" } dd { @for s in f["scanners"].as_array().unwrap_or(&empty) { code { (text(s)) } " " } }
            }
            @if let Some(d) = f["details"].as_str() { p { (d) } }
        }
        @if manage {
            section #triage aria-labelledby="triage-h" {
                h2 #triage-h { "Decide" }
                @if live {
                    form id="rate" method="post" action=(action) {
                        fieldset { legend { "Re-rate" }
                            (hidden("rate"))
                            div.field {
                                label for="rate-severity" { "Severity" }
                                select #rate-severity name="severity" {
                                    @let chosen = typed_in("rate").map_or_else(|| text(&f["severity"]), |t| t.severity.clone());
                                    @for s in super::vulns::SEVERITIES { option value=(s) selected[chosen == s] { (s) } }
                                }
                            }
                            (reason("rate")) (beside(problem, "rate"))
                            button type="submit" { "Re-rate" }
                        }
                    }
                    form id="accept" method="post" action=(action) {
                        fieldset { legend { "Accept the risk" }
                            (hidden("accept"))
                            div.field {
                                label for="accept-until" { "Until" }
                                input #accept-until type="text" name="until" required placeholder="90d or 2027-03-31" size="16"
                                    value=[typed_in("accept").map(|t| t.until.as_str())]
                                    aria-describedby="accept-until-hint";
                                span.muted #accept-until-hint { " at most 366 days; it reopens by itself then" }
                            }
                            (reason("accept")) (beside(problem, "accept"))
                            button type="submit" { "Accept the risk" }
                        }
                    }
                    form id="false_positive" method="post" action=(action) {
                        fieldset { legend { "False positive" }
                            (hidden("false_positive"))
                            (reason("false_positive")) (beside(problem, "false_positive"))
                            button type="submit" { "Call it a false positive" }
                        }
                    }
                } @else {
                    form id="reopen" method="post" action=(action) {
                        fieldset { legend { "Reopen" }
                            (hidden("reopen"))
                            (reason("reopen")) (beside(problem, "reopen"))
                            button type="submit" { "Reopen" }
                        }
                    }
                }
            }
        }
        section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            @if history.is_empty() { p.muted { "No change since it was first seen." } } @else {
                div.scroll { table #history {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Change" } th scope="col" { "Detail" } } }
                    tbody { @for c in history.iter().rev() {
                        tr { td { (when(&c["at"])) } td { (text(&c["actor"])) } td { (text(&c["change"])) } td { code { (text(&c["detail"])) } } }
                    } }
                } }
            }
        }
    };
    let title = format!("Finding {id}: {}", text(&f["title"]));
    v.render(status, Section::Vulns, &title, body)
}

#[cfg(test)]
mod tests {
    use super::advisory_link;

    #[test]
    fn advisories_link_to_their_home_and_nothing_else() {
        assert_eq!(
            advisory_link("CVE-2024-1234").as_deref(),
            Some("https://nvd.nist.gov/vuln/detail/CVE-2024-1234")
        );
        assert_eq!(
            advisory_link("RUSTSEC-2023-0071").as_deref(),
            Some("https://rustsec.org/advisories/RUSTSEC-2023-0071.html")
        );
        assert_eq!(
            advisory_link("GHSA-abcd-efgh-ijkl").as_deref(),
            Some("https://github.com/advisories/GHSA-abcd-efgh-ijkl")
        );
        assert_eq!(advisory_link("CodeQL/py/sql-injection"), None);
        assert_eq!(advisory_link("CVE-1\"onmouseover=x"), None);
        assert_eq!(advisory_link(""), None);
    }
}
