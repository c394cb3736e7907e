//! Getting started: what a new installation still lacks, read from its real state each time
//! the page is drawn — an identity provider, SCIM provisioning, a joined host, a policy of
//! one's own and a scanner's findings — each with the way to do it. Shown on the first page
//! to whoever may set Warden up (change the policy and read what the steps look at), until
//! every step is done.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use maud::{Markup, html};
use serde_json::json;

use super::Visitor;
use crate::Web;
use crate::graphql::Capability;

/// One step: done or not, what it is, and how to do it.
struct Step {
    id: &'static str,
    done: bool,
    title: &'static str,
    how: Markup,
}

/// The checklist for `v`, or nothing: for a visitor who may not set Warden up, or once every
/// step is done.
pub(crate) async fn for_visitor(app: &Web, v: &Visitor) -> Markup {
    let needs = [
        Capability::ManagePolicy,
        Capability::ReadTokens,
        Capability::ReadDirectory,
        Capability::ReadVulns,
        Capability::ReadAudit,
    ];
    if !needs.into_iter().all(|c| v.may(c)) {
        return html! {};
    }
    // A first import is read from the log (one indexed event), not from the findings, which
    // may number millions.
    let q = "query { tokens { role status } hosts { name } policyHistory { appliedBy }
      imports: auditEvents(action: \"vuln.import\", outcome: \"success\", newestFirst: true, first: 1) { seq } }";
    let data = match v.graphql(app, q, json!({})).await {
        Ok(d) => d,
        Err(_) => return html! {},
    };
    let empty = Vec::new();
    let list = |key: &str| data[key].as_array().unwrap_or(&empty);
    let steps = [
        Step {
            id: "identity-provider",
            done: app.settings.has_identity_provider(),
            title: "Sign people in through your identity provider",
            how: html! { "Add an " code { "[[identity.oidc]]" } " provider to the configuration file and restart; the " a href="/console/settings" { "Settings" } " page shows it." },
        },
        Step {
            id: "scim",
            done: list("tokens").iter().any(|t| {
                t["role"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case("scim"))
                    && t["status"] == "ACTIVE"
            }),
            title: "Provision people with SCIM",
            how: html! { "Make a token with " code { "warden admin token create --name idp --role scim" } " and give it to your identity provider with the SCIM URL " code { "/scim/v2" } "." },
        },
        Step {
            id: "first-host",
            done: !list("hosts").is_empty(),
            title: "Join your first host",
            how: html! { a href="/console/hosts/join" { "Make a join token" } " and run the agent command it comes with on the host." },
        },
        Step {
            id: "policy",
            done: list("policyHistory")
                .iter()
                .any(|p| p["appliedBy"].as_str().is_some_and(|by| by != "system")),
            title: "Make the policy your own",
            how: html! { a href="/console/policy/edit" { "Edit the policy" } ": who may log in where, as whom, and who manages Warden." },
        },
        Step {
            id: "first-import",
            done: !list("imports").is_empty(),
            title: "Import a scanner's findings",
            how: html! { "Run " code { "warden vuln import trivy.json --asset NAME" } " with a Trivy, Grype, OSV-Scanner, cargo-audit or SARIF report." },
        },
    ];
    let done = steps.iter().filter(|s| s.done).count();
    if done == steps.len() {
        return html! {};
    }
    html! {
        section #getting-started aria-labelledby="getting-started-h" {
            h2 #getting-started-h { "Getting started: " (done) " of " (steps.len()) " done" }
            ol.checklist {
                @for s in &steps {
                    li id=(s.id) class=(if s.done { "done" } else { "todo" }) {
                        span.tick aria-hidden="true" { @if s.done { "✓" } @else { "○" } }
                        " " strong { (s.title) }
                        @if s.done { span.visually-hidden { " (done)" } } @else { br; span.muted { (s.how) } }
                    }
                }
            }
        }
    }
}
