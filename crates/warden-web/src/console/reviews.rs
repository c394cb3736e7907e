//! Access reviews: the campaigns with items for me (all, with `review`), and deciding items in
//! bulk with a justification.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::json;

use super::{
    Done, Failure, Parts, Problem, Section, Visitor, allowed, beside, flash, invalid, open,
    redirect, submitted, text, visitor, when,
};
use crate::Web;
use crate::graphql::Capability;

const LIST: &str =
    "query { accessReviews { id name scope reviewer createdBy createdAt dueAt autoRevoke state
  items { n decision } } }";

/// `GET /console/reviews`.
pub(crate) async fn list(
    State(app): State<Web>,
    Query(done): Query<Done>,
    parts: Parts,
) -> Response {
    let (v, data) = match open(&app, parts, Section::Reviews, LIST, json!({})).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let reviews = data["accessReviews"].as_array().unwrap_or(&empty);
    let body = html! {
        (flash(&done))
        @if v.may(Capability::Review) { p { a.button href="/console/reviews/new" { "Start a review" } } }
        @if reviews.is_empty() {
            p.muted { "No review has items for you." }
        } @else {
            div.scroll { table #reviews {
                thead { tr { th scope="col" { "Campaign" } th scope="col" { "Scope" } th scope="col" { "Reviewer" }
                    th scope="col" { "Due" } th scope="col" { "State" } th scope="col" { "Decided" } } }
                tbody { @for r in reviews {
                    @let items = r["items"].as_array().unwrap_or(&empty);
                    @let decided = items.iter().filter(|i| !i["decision"].is_null()).count();
                    tr {
                        td { a href={ "/console/reviews/" (text(&r["id"])) } {
                            @if let Some(name) = r["name"].as_str().filter(|n| !n.is_empty()) { (name) } @else { "Review of " (text(&r["scope"])) }
                        } br; span.muted { "started " (when(&r["createdAt"])) " by " (text(&r["createdBy"])) } }
                        td { code { (text(&r["scope"])) } }
                        td { (text(&r["reviewer"])) }
                        td { (when(&r["dueAt"])) @if r["autoRevoke"] == true { br; span.muted { "undecided revoked then" } } }
                        td { span class={ "badge state-" (text(&r["state"])) } { (text(&r["state"])) } }
                        td { (decided) " of " (items.len()) }
                    }
                } }
            } }
        }
    };
    v.ok(Section::Reviews, "Access reviews", body)
}

const ONE: &str =
    "query($id: String!) { accessReview(id: $id) { id name scope reviewer createdBy createdAt dueAt
  autoRevoke state closedAt populationSha256
  items { n subject entitlement source grantedAt grantedBy grantedWhy lastUsedAt reviewer decision
    reason decidedBy decidedAt verifiedAt } } }";

/// `GET /console/reviews/{id}`: the items, with a form deciding the ticked ones.
pub(crate) async fn show(
    State(app): State<Web>,
    Path(id): Path<String>,
    Query(done): Query<Done>,
    parts: Parts,
) -> Response {
    let (v, data) = match open(&app, parts, Section::Reviews, ONE, json!({ "id": id })).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = &data["accessReview"];
    if r.is_null() {
        return v.refusal(
            StatusCode::NOT_FOUND,
            Section::Reviews,
            &format!("no review `{id}` with items for you"),
        );
    }
    let empty = Vec::new();
    let items = r["items"].as_array().unwrap_or(&empty);
    let me = v.name();
    let open = r["state"] == "open";
    let mine = |i: &serde_json::Value| {
        open && i["decision"].is_null() && i["reviewer"] == me && i["subject"] != me
    };
    let pending = items.iter().filter(|i| mine(i)).count();
    let body = html! {
        (flash(&done))
        p {
            "Scope " code { (text(&r["scope"])) } ", reviewed by " (text(&r["reviewer"]))
            ", due " (when(&r["dueAt"])) ". "
            span class={ "badge state-" (text(&r["state"])) } { (text(&r["state"])) }
        }
        p.muted { "Population frozen at the start, SHA-256 " code { (text(&r["populationSha256"])) } }
        form method="post" action={ "/console/reviews/" (text(&r["id"])) } {
            input type="hidden" name="csrf" value=(v.csrf);
            div.scroll { table #review-items {
                thead { tr {
                    th scope="col" { @if pending > 0 { input type="checkbox" id="all" data-select-all="item" aria-label="Select every item you can decide"; } }
                    th scope="col" { "#" } th scope="col" { "Who" } th scope="col" { "Group" } th scope="col" { "How" }
                    th scope="col" { "Granted" } th scope="col" { "Last used" } th scope="col" { "Reviewer" } th scope="col" { "Decision" }
                } }
                tbody { @for i in items {
                    @let n = text(&i["n"]);
                    tr {
                        td { @if mine(i) { input type="checkbox" name="item" value=(n) id={ "item-" (n) } aria-label={ "Select item " (n) }; } }
                        td { (n) }
                        td { (text(&i["subject"])) }
                        td { (text(&i["entitlement"])) }
                        td { (text(&i["source"])) @if let Some(why) = i["grantedWhy"].as_str() { br; span.muted { (why) } } }
                        td { (when(&i["grantedAt"])) @if let Some(by) = i["grantedBy"].as_str() { br; span.muted { "by " (by) } } }
                        td { @if i["lastUsedAt"].is_null() { span.muted { "never" } } @else { (when(&i["lastUsedAt"])) } }
                        td { (text(&i["reviewer"])) }
                        td.decision {
                            @if let Some(d) = i["decision"].as_str() {
                                strong { (d) } " by " (text(&i["decidedBy"])) br;
                                span.muted { (text(&i["reason"])) }
                                @if d == "revoke" {
                                    br;
                                    @if i["verifiedAt"].is_null() { span.unverified { "revocation not yet verified" } }
                                    @else { span.verified { "revoked, verified " (when(&i["verifiedAt"])) } }
                                }
                            } @else { span.muted { "undecided" } }
                        }
                    }
                } }
            } }
            @if pending > 0 {
                fieldset {
                    legend { "Decide the selected items" }
                    div.field {
                        label for="reason" { "Justification" }
                        input #reason name="reason" required size="50" maxlength="500" placeholder="still on the on-call rota";
                    }
                    button.primary type="submit" name="decision" value="keep" { "Keep access" }
                    " "
                    button.danger type="submit" name="decision" value="revoke" { "Revoke access" }
                }
            }
        }
        @if open && v.may(Capability::Review) {
            form id="close" method="post" action={ "/console/reviews/" (text(&r["id"])) "/close" } {
                input type="hidden" name="csrf" value=(v.csrf);
                p { button type="submit" { "Close the campaign" } " "
                    span.muted { "What is undecided stays so on the record." } }
            }
        }
    };
    let title = match r["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("Access review: {name}"),
        None => "Access review".to_owned(),
    };
    v.ok(Section::Reviews, &title, body)
}

/// `POST /console/reviews/{id}`: `item` repeated, `decision`, `reason`, `csrf`.
pub(crate) async fn decide(
    State(app): State<Web>,
    Path(id): Path<String>,
    parts: Parts,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let v = match visitor(&app, parts).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or("")
    };
    if let Err(r) = v
        .check_form(&app, Section::Reviews, "review.decide", field("csrf"))
        .await
    {
        return r;
    }
    let mut items = Vec::new();
    for (_, n) in form.iter().filter(|(k, _)| k == "item") {
        match n.parse::<u32>() {
            Ok(n) => items.push(n),
            Err(_) => {
                return v.refusal(
                    StatusCode::BAD_REQUEST,
                    Section::Reviews,
                    &format!("item `{n}` is not an item number"),
                );
            }
        }
    }
    if items.is_empty() {
        return v.refusal(
            StatusCode::BAD_REQUEST,
            Section::Reviews,
            "select at least one item to decide",
        );
    }
    let q = "mutation($r: String!, $i: [Int!]!, $d: String!, $why: String!) {
      decideReviewItems(review: $r, items: $i, decision: $d, reason: $why) { id } }";
    let vars = json!({ "r": id, "i": items, "d": field("decision"), "why": field("reason") });
    match v.graphql(&app, q, vars).await {
        Ok(d) => redirect(&format!(
            "/console/reviews/{}?done=decided",
            text(&d["decideReviewItems"]["id"])
        )),
        Err(f) => v.failed(Section::Reviews, f),
    }
}

/// What the new-review form sends.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct NewReview {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    reviewer: String,
    #[serde(default)]
    due: String,
    /// Present when ticked.
    auto_revoke: Option<String>,
}

fn new_form(
    v: &Visitor,
    status: StatusCode,
    typed: &NewReview,
    problem: Option<&Problem<'_>>,
) -> Response {
    let (bad, described) = invalid(problem, "review");
    let or = |typed: &str, default: &'static str| {
        if typed.is_empty() {
            default.to_owned()
        } else {
            typed.to_owned()
        }
    };
    let body = html! {
        p { a href="/console/reviews" { "← Reviews" } }
        p.muted { "Who holds what is frozen and hashed when the campaign starts; reviewers then keep or revoke each item with a justification, and revocations are verified." }
        form id="review" method="post" action="/console/reviews/new" {
            input type="hidden" name="csrf" value=(v.csrf);
            div.field {
                label for="review-name" { "Name" }
                input #review-name type="text" name="name" value=(typed.name) maxlength="100" size="40" placeholder="Q1 2027 production access"
                    aria-invalid=[bad] aria-describedby=[described.clone()];
            }
            div.field {
                label for="review-scope" { "Scope" }
                input #review-scope type="text" name="scope" value=(or(&typed.scope, "groups:*")) required size="30"
                    aria-describedby="review-scope-hint";
                span.muted #review-scope-hint { " groups:* (every group), groups:ops,web, tokens:* or tokens:admin,scim" }
            }
            div.field {
                label for="review-reviewer" { "Reviewer" }
                input #review-reviewer type="text" name="reviewer" value=(typed.reviewer) required size="20"
                    aria-describedby="review-reviewer-hint";
                span.muted #review-reviewer-hint { " a login name, owner (each group's owner) or manager (from SCIM)" }
            }
            div.field {
                label for="review-due" { "Due" }
                input #review-due type="text" name="due" value=(or(&typed.due, "14d")) required size="16";
            }
            div.field {
                label { input #review-auto type="checkbox" name="auto_revoke" value="1" checked[typed.auto_revoke.is_some()]; " revoke what is undecided at the due date" }
            }
            (beside(problem, "review"))
            button.primary type="submit" { "Start the review" }
        }
    };
    v.render(status, Section::Reviews, "Start an access review", body)
}

/// `GET /console/reviews/new`: for a visitor who may start reviews.
pub(crate) async fn new_page(State(app): State<Web>, parts: Parts) -> Response {
    let v = match allowed(&app, parts, Section::Reviews).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Err(r) =
        super::manage::may_or_refuse(&app, &v, Capability::Review, Section::Reviews).await
    {
        return r;
    }
    new_form(&v, StatusCode::OK, &NewReview::default(), None)
}

/// `POST /console/reviews/new`: starts the campaign through the API, as the visitor.
pub(crate) async fn create(
    State(app): State<Web>,
    parts: Parts,
    Form(form): Form<NewReview>,
) -> Response {
    let v = match submitted(&app, parts, Section::Reviews, "review.create", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let q = "mutation($n: String, $s: String!, $r: String!, $d: String!, $a: Boolean!) {
      createAccessReview(name: $n, scope: $s, reviewer: $r, due: $d, autoRevoke: $a) { id } }";
    let vars = json!({ "n": form.name, "s": form.scope.trim(), "r": form.reviewer.trim(), "d": form.due.trim(),
        "a": form.auto_revoke.is_some() });
    match v.graphql(&app, q, vars).await {
        Ok(d) => redirect(&format!(
            "/console/reviews/{}?done=started",
            text(&d["createAccessReview"]["id"])
        )),
        Err(Failure::Refused(message)) => {
            let problem = Problem {
                form: "review",
                message: &message,
            };
            new_form(&v, StatusCode::BAD_REQUEST, &form, Some(&problem))
        }
        Err(f) => v.failed(Section::Reviews, f),
    }
}

/// `POST /console/reviews/{id}/close`.
pub(crate) async fn close(
    State(app): State<Web>,
    Path(id): Path<String>,
    parts: Parts,
    Form(form): Form<NewReview>,
) -> Response {
    let v = match submitted(&app, parts, Section::Reviews, "review.close", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let q = "mutation($id: String!) { closeAccessReview(id: $id) { id } }";
    match v.graphql(&app, q, json!({ "id": id })).await {
        Ok(_) => redirect(&format!("/console/reviews/{id}?done=closed")),
        Err(f) => v.failed(Section::Reviews, f),
    }
}
