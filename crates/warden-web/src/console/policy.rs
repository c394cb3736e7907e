//! The policy in force, its history, and the explain tool.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::{Failure, Parts, Section, open, text, when};
use crate::Web;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Explain {
    principal: Option<String>,
    action: Option<String>,
    resource: Option<String>,
    context: Option<String>,
}

/// `GET /console/policy[?principal=&action=&resource=&context=]`.
pub(crate) async fn show(
    State(app): State<Web>,
    Query(explain): Query<Explain>,
    parts: Parts,
) -> Response {
    let q = "query { policy { version hash appliedBy appliedAt policies tests files { name text } }
      policyHistory { version hash appliedBy appliedAt policies active } }";
    let (v, data) = match open(&app, parts, Section::Policy, q, json!({})).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let field = |s: &Option<String>| s.as_deref().map(str::trim).unwrap_or("").to_owned();
    let (principal, action, resource, context) = (
        field(&explain.principal),
        field(&explain.action),
        field(&explain.resource),
        field(&explain.context),
    );
    let asked = !principal.is_empty() && !action.is_empty() && !resource.is_empty();
    let answer = if asked {
        let q = "query($p: String!, $a: String!, $r: String!, $c: String) {
          explainPolicy(principal: $p, action: $a, resource: $r, context: $c) {
            decision policyVersion reason errors principal principalGroups resource
            resourceLabels { key value } determining { id file text } considered { id } } }";
        let vars = json!({ "p": principal, "a": action, "r": resource,
            "c": if context.is_empty() { None } else { Some(&context) } });
        Some(v.graphql(&app, q, vars).await)
    } else {
        None
    };
    let empty = Vec::new();
    let policy = &data["policy"];
    let body = html! {
        section aria-labelledby="explain-h" {
            h2 #explain-h { "Explain a decision" }
            form method="get" action="/console/policy" {
                div.field { label for="principal" { "Principal" } input #principal name="principal" value=(principal) required placeholder="user:alice"; }
                div.field { label for="action" { "Action" } input #action name="action" value=(action) required placeholder="ssh"; }
                div.field { label for="resource" { "Resource" } input #resource name="resource" value=(resource) required placeholder="host:db-1"; }
                div.field { label for="context" { "Context (JSON)" } input #context name="context" value=(context) size="30" placeholder="{\"login\": \"root\"}"; }
                button.primary type="submit" { "Explain" }
            }
            @match &answer {
                None => {},
                Some(Err(Failure::Refused(m) | Failure::Forbidden(m))) => p.notice.error role="alert" { (super::prose(m)) },
                Some(Err(Failure::Internal)) => p.notice.error role="alert" { "internal error; quote request id " (v.audit.request_id) },
                Some(Ok(d)) => {
                    @let e = &d["explainPolicy"];
                    div #explanation class={ "notice " @if e["decision"] == "allow" { "ok" } @else { "error" } } role="status" {
                        strong { (text(&e["decision"])) } ": " (text(&e["reason"]))
                    }
                    p { (text(&e["principal"])) " in " @for g in e["principalGroups"].as_array().unwrap_or(&empty) { code { (text(g)) } " " }
                        "→ " (text(&e["resource"])) " " @for l in e["resourceLabels"].as_array().unwrap_or(&empty) { code { (text(&l["key"])) "=" (text(&l["value"])) } " " } }
                    @for p in e["determining"].as_array().unwrap_or(&empty) {
                        h3 { (text(&p["id"])) }
                        pre.policy { (text(&p["text"])) }
                    }
                    @for err in e["errors"].as_array().unwrap_or(&empty) { p.notice.error { (text(err)) } }
                },
            }
        }
        section aria-labelledby="active-h" {
            h2 #active-h { "In force" }
            @if policy.is_null() { p.muted { "No policy applied." } } @else {
                p { "Version " strong { (text(&policy["version"])) } ", applied by " (text(&policy["appliedBy"])) " at " (when(&policy["appliedAt"]))
                    ": " (super::count(policy["policies"].as_u64().unwrap_or(0), "policy", "policies")) ", " (super::count(policy["tests"].as_u64().unwrap_or(0), "test", "tests")) ". SHA-256 " code { (text(&policy["hash"]).get(..16).unwrap_or("")) "…" } }
                @for f in policy["files"].as_array().unwrap_or(&empty) {
                    details {
                        summary { code { (text(&f["name"])) } }
                        pre.policy { (text(&f["text"])) }
                    }
                }
            }
        }
        section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            div.scroll { table #policy-history {
                thead { tr { th scope="col" { "Version" } th scope="col" { "Applied" } th scope="col" { "By" } th scope="col" { "Policies" } th scope="col" { "SHA-256" } } }
                tbody { @for h in data["policyHistory"].as_array().unwrap_or(&empty) {
                    tr { td { (text(&h["version"])) @if h["active"] == true { " " span.badge.state-approved { "active" } } }
                         td { (when(&h["appliedAt"])) } td { (text(&h["appliedBy"])) } td { (text(&h["policies"])) }
                         td { code { (text(&h["hash"]).get(..16).unwrap_or("")) "…" } } }
                } }
            } }
        }
    };
    v.ok(Section::Policy, "Policy", body)
}
