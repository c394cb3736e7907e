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
    /// Compare this version …
    from: Option<i64>,
    /// … with this one.
    to: Option<i64>,
    /// `applied` or `unchanged`, after the editor.
    done: Option<String>,
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
    let compared = match (explain.from, explain.to) {
        (Some(from), Some(to)) => match compare(&app, &v, from, to).await {
            Ok(d) => Some(Ok(d)),
            Err(Failure::Refused(m) | Failure::Forbidden(m)) => Some(Err(m)),
            Err(f) => return v.failed(Section::Policy, f),
        },
        _ => None,
    };
    let empty = Vec::new();
    let policy = &data["policy"];
    let history = data["policyHistory"].as_array().unwrap_or(&empty);
    let body = html! {
        @match explain.done.as_deref() {
            Some("applied") => p.notice.ok role="status" { "Applied. The new version is in force on every replica within a second." },
            Some("unchanged") => p.notice role="status" { "Unchanged: the set in force was already this one." },
            _ => {},
        }
        @if v.may(crate::graphql::Capability::ManagePolicy) { p { a.button href="/console/policy/edit" { "Edit the policy" } } }
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
                Some(Err(Failure::Refused(m) | Failure::Forbidden(m) | Failure::Stale(m))) => p.notice.error role="alert" { (super::prose(m)) },
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
                        pre.policy { (super::policy_edit::highlight(&text(&f["name"]), &text(&f["text"]))) }
                    }
                }
            }
        }
        section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            div.scroll { table #policy-history {
                thead { tr { th scope="col" { "Version" } th scope="col" { "Applied" } th scope="col" { "By" } th scope="col" { "Policies" } th scope="col" { "SHA-256" } } }
                tbody { @for h in history {
                    tr { td { (text(&h["version"])) @if h["active"] == true { " " span.badge.state-approved { "active" } } }
                         td { (when(&h["appliedAt"])) } td { (text(&h["appliedBy"])) } td { (text(&h["policies"])) }
                         td { code { (text(&h["hash"]).get(..16).unwrap_or("")) "…" } } }
                } }
            } }
            @if history.len() > 1 {
                form.filters #compare method="get" action="/console/policy" {
                    label for="from" { "Compare version" }
                    select #from name="from" { @for h in history { option value=(text(&h["version"])) selected[explain.from == h["version"].as_i64()] { (text(&h["version"])) } } }
                    label for="to" { "with" }
                    select #to name="to" { @for h in history { option value=(text(&h["version"])) selected[explain.to.or(history.first().and_then(|h| h["version"].as_i64())) == h["version"].as_i64()] { (text(&h["version"])) } } }
                    button type="submit" { "Compare" }
                }
            }
            @match &compared {
                Some(Ok(d)) if d.is_empty() => p.notice role="status" { "The two versions have the same files." },
                Some(Ok(d)) => (super::policy_edit::diff(d)),
                Some(Err(m)) => p.notice.error role="alert" { (super::prose(m)) },
                None => {},
            }
        }
    };
    v.ok(Section::Policy, "Policy", body)
}

/// The unified diff from version `from` to version `to`.
async fn compare(app: &Web, v: &super::Visitor, from: i64, to: i64) -> Result<String, Failure> {
    let q = "query($a: Int!, $b: Int!) { a: policy(version: $a) { files { name text } } b: policy(version: $b) { files { name text } } }";
    let d = v.graphql(app, q, json!({ "a": from, "b": to })).await?;
    use super::policy_edit::files;
    Ok(warden_runtime::policy::diff(
        &files(&d["a"]),
        &files(&d["b"]),
    ))
}
