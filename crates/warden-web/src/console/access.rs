//! "My access" (groups, hosts and logins the policy allows, requests) and the approvals inbox.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use axum::http::StatusCode;

use super::{Done, Parts, Problem, Section, Visitor, flash, open, redirect, submitted, text, when};
use crate::Web;

const MY_ACCESS: &str = "query {
  viewer { user { groups } }
  requestableGroups { name description }
  reachableHosts { name labels logins }
  accessRequests(mine: true, first: 50) { id requester group reason durationSeconds state createdAt
    decisions { approver approve reason }
    grant { expiresAt endedAt endReason } }
}";

/// `GET /console`: what I can reach and how, and asking for more.
pub(crate) async fn my_access(
    State(app): State<Web>,
    Query(done): Query<Done>,
    parts: Parts,
) -> Response {
    match super::allowed(&app, parts, Section::Access).await {
        Ok(v) => page(&app, &v, &done, None, None).await,
        Err(r) => r,
    }
}

/// The page, with what was typed into a refused request and the refusal beside it.
async fn page(
    app: &Web,
    v: &Visitor,
    done: &Done,
    typed: Option<&RequestForm>,
    problem: Option<&Problem<'_>>,
) -> Response {
    let data = match v.graphql(app, MY_ACCESS, json!({})).await {
        Ok(data) => data,
        Err(f) => return v.failed(Section::Access, f),
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let requestable = data["requestableGroups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let chosen = typed.map(|t| t.group.trim()).unwrap_or_default();
    let chosen_for = typed.map(|t| t.duration.as_str()).unwrap_or("4h");
    let reason = typed.map(|t| t.reason.as_str()).unwrap_or_default();
    let (bad, described) = super::invalid(problem, "request");
    let empty = Vec::new();
    let groups = data["viewer"]["user"]["groups"]
        .as_array()
        .unwrap_or(&empty);
    let hosts = data["reachableHosts"].as_array().unwrap_or(&empty);
    let requests: Vec<&Value> = data["accessRequests"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .collect();
    let checklist = super::checklist::for_visitor(app, v).await;
    let body = html! {
        (flash(done))
        (checklist)
        section aria-labelledby="groups-h" {
            h2 #groups-h { "Your groups" }
            @if groups.is_empty() {
                p.muted { "You belong to no group." }
            } @else {
                ul #my-groups { @for g in groups { li { (text(g)) } } }
            }
        }
        section aria-labelledby="hosts-h" {
            h2 #hosts-h { "Hosts you can reach" }
            @if hosts.is_empty() {
                p.muted { "The policy allows you no SSH login on any host yet. Request access below." }
            } @else {
                div.scroll { table #my-hosts {
                    thead { tr { th scope="col" { "Host" } th scope="col" { "Labels" } th scope="col" { "Log in as" } th scope="col" { "How" } } }
                    tbody { @for h in hosts {
                        @let logins = h["logins"].as_array().unwrap_or(&empty);
                        tr {
                            td { (text(&h["name"])) }
                            td { @for l in h["labels"].as_array().unwrap_or(&empty) { code { (text(l)) } " " } }
                            td { @for l in logins { code { (text(l)) } " " } }
                            td { @if let Some(l) = logins.first() { code { "warden ssh " (text(l)) "@" (text(&h["name"])) } } }
                        }
                    } }
                } }
            }
        }
        section aria-labelledby="request-h" {
            h2 #request-h { "Request access" }
            @if requestable.is_empty() {
                p.muted { "There is no group you are not already in." }
            } @else {
            form id="request" method="post" action="/console/access/request" {
                input type="hidden" name="csrf" value=(v.csrf);
                div.field {
                    label for="group" { "Group" }
                    select #group name="group" required aria-invalid=[bad] aria-describedby=[described.clone()] {
                        option value="" { "Choose a group" }
                        @for g in &requestable {
                            @let name = text(&g["name"]);
                            option value=(name) selected[name == chosen] {
                                (name) @if let Some(d) = g["description"].as_str().filter(|d| !d.is_empty()) { " — " (d) }
                            }
                        }
                    }
                }
                div.field {
                    label for="duration" { "For" }
                    select #duration name="duration" {
                        @for (value, label) in DURATIONS {
                            option value=(value) selected[value == chosen_for] { (label) }
                        }
                    }
                }
                div.field {
                    label for="reason" { "Reason" }
                    input #reason name="reason" required size="50" maxlength="500" value=(reason)
                        placeholder="INC-123: fix the failing backup" aria-invalid=[bad] aria-describedby=[described];
                }
                (super::beside(problem, "request"))
                button.primary type="submit" { "Request" }
            }
            }
        }
        section aria-labelledby="requests-h" {
            h2 #requests-h { "Your requests" }
            @if requests.is_empty() {
                p.muted { "None yet." }
            } @else {
                (request_table(&requests, false, &v.csrf))
            }
        }
    };
    v.render(status, Section::Access, "My access", body)
}

/// The grant lengths the form offers.
const DURATIONS: [(&str, &str); 5] = [
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("8h", "8 hours"),
    ("1d", "1 day"),
    ("7d", "7 days"),
];

#[derive(Debug, Deserialize)]
pub(crate) struct RequestForm {
    /// Missing counts as a mismatch, which is recorded.
    #[serde(default)]
    csrf: String,
    group: String,
    duration: String,
    reason: String,
}

/// `POST /console/access/request`.
pub(crate) async fn request(
    State(app): State<Web>,
    parts: Parts,
    Form(form): Form<RequestForm>,
) -> Response {
    let v = match submitted(&app, parts, Section::Access, "access.request", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let q = "mutation($g: String!, $r: String!, $d: String!) { requestAccess(group: $g, reason: $r, duration: $d) { id } }";
    let vars = json!({ "g": form.group.trim(), "r": form.reason, "d": form.duration });
    match v.graphql(&app, q, vars).await {
        Ok(_) => redirect("/console?done=requested"),
        Err(super::Failure::Refused(message)) => {
            let problem = Problem {
                form: "request",
                message: &message,
            };
            page(&app, &v, &Done::default(), Some(&form), Some(&problem)).await
        }
        Err(f) => v.failed(Section::Access, f),
    }
}

// Pending requests are few; the decided ones shown are the latest fifty approved and denied.
const INBOX: &str = "query {
  pending: accessRequests(state: \"pending\", first: 1000) { ...request }
  approved: accessRequests(state: \"approved\", first: 50) { ...request }
  denied: accessRequests(state: \"denied\", first: 50) { ...request }
}
fragment request on AccessRequestInfo { id requester group reason durationSeconds approvals state
  createdAt decisions { approver approve reason } grant { expiresAt } }";

/// `GET /console/approvals`: requests waiting for me, and those I decided.
pub(crate) async fn approvals(
    State(app): State<Web>,
    Query(done): Query<Done>,
    parts: Parts,
) -> Response {
    let (v, data) = match open(&app, parts, Section::Approvals, INBOX, json!({})).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let me = format!("user:{}", v.name());
    let empty = Vec::new();
    let list = |key: &str| -> Vec<&Value> {
        data[key]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter(|r| r["requester"] != v.name())
            .collect()
    };
    let voted = |r: &Value| {
        r["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["approver"] == me.as_str()))
    };
    // Waiting for me: pending and not yet decided by me; the rest, newest first.
    let (mut decided, waiting): (Vec<&Value>, Vec<&Value>) =
        list("pending").into_iter().partition(|r| voted(r));
    decided.extend(list("approved"));
    decided.extend(list("denied"));
    decided.sort_by(|a, b| text(&b["createdAt"]).cmp(&text(&a["createdAt"])));
    let body = html! {
        (flash(&done))
        section #inbox data-refresh="10" aria-labelledby="waiting-h" aria-live="polite" {
            h2 #waiting-h { "Waiting for a decision (" (waiting.len()) ")" }
            @if waiting.is_empty() {
                p.muted { "Nothing is waiting for you." }
            } @else {
                (request_table(&waiting, true, &v.csrf))
            }
        }
        section aria-labelledby="decided-h" {
            h2 #decided-h { "Decided" }
            @if decided.is_empty() { p.muted { "None yet." } } @else { (request_table(&decided, false, &v.csrf)) }
        }
    };
    v.ok(Section::Approvals, "Approvals", body)
}

fn duration(seconds: &Value) -> String {
    let s = seconds.as_u64().unwrap_or(0);
    super::spoken(std::time::Duration::from_secs(s))
}

fn request_table(requests: &[&Value], decide: bool, csrf: &str) -> Markup {
    let empty = Vec::new();
    html! {
        div.scroll { table.requests {
            thead { tr {
                th scope="col" { "Requested" } th scope="col" { "By" } th scope="col" { "Group" }
                th scope="col" { "For" } th scope="col" { "Reason" } th scope="col" { "State" }
                th scope="col" { @if decide { "Decide" } @else { "Decisions" } }
            } }
            tbody { @for r in requests {
                @let id = text(&r["id"]);
                @let state = text(&r["state"]);
                tr data-request=(id) {
                    td { (when(&r["createdAt"])) }
                    td { (text(&r["requester"])) }
                    td { (text(&r["group"])) }
                    td { (duration(&r["durationSeconds"])) }
                    td { (text(&r["reason"])) }
                    td { span class={ "badge state-" (state) } { (state) }
                        @if state == "pending" {
                            @let approved = r["decisions"].as_array().map_or(0, |d| d.iter().filter(|d| d["approve"] == true).count());
                            br; span.muted.approvals { (approved) " of " (super::count(r["approvals"].as_u64().unwrap_or(1), "approval", "approvals")) }
                        }
                        @if let Some(exp) = r["grant"]["expiresAt"].as_str() { br; span.muted { "until " (when(&json!(exp))) } } }
                    td {
                        @if decide {
                            form.decide method="post" action={ "/console/approvals/" (id) } {
                                input type="hidden" name="csrf" value=(csrf);
                                label for={ "why-" (id) } { "Note" }
                                input id={ "why-" (id) } name="reason" size="20" maxlength="500";
                                " "
                                button.primary type="submit" name="decision" value="approve" { "Approve" }
                                " "
                                button.danger type="submit" name="decision" value="deny" { "Deny" }
                            }
                        } @else {
                            @for d in r["decisions"].as_array().unwrap_or(&empty) {
                                div { (text(&d["approver"])) ": " @if d["approve"] == true { "approved" } @else { "denied" }
                                    @if d["reason"].as_str().is_some_and(|s| !s.is_empty()) { " — " (text(&d["reason"])) } }
                            }
                        }
                    }
                }
            } }
        } }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DecideForm {
    /// Missing counts as a mismatch, which is recorded.
    #[serde(default)]
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/approvals/{id}`: approve or deny.
pub(crate) async fn decide(
    State(app): State<Web>,
    Path(id): Path<String>,
    parts: Parts,
    Form(form): Form<DecideForm>,
) -> Response {
    let v = match submitted(&app, parts, Section::Approvals, "access.decide", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (q, done) = match form.decision.as_str() {
        "approve" => (
            "mutation($id: String!, $r: String!) { approveAccessRequest(id: $id, reason: $r) { id } }",
            "approved",
        ),
        "deny" => (
            "mutation($id: String!, $r: String!) { denyAccessRequest(id: $id, reason: $r) { id } }",
            "denied",
        ),
        other => {
            return v.refusal(
                axum::http::StatusCode::BAD_REQUEST,
                Section::Approvals,
                &format!("unknown decision `{other}`: approve or deny"),
            );
        }
    };
    match v
        .graphql(&app, q, json!({ "id": id, "r": form.reason }))
        .await
    {
        Ok(_) => redirect(&format!("/console/approvals?done={done}")),
        Err(f) => v.failed(Section::Approvals, f),
    }
}
