//! The directory's and the fleet's daily changes in the browser: invite a person (with the
//! one-time enrollment link to hand over), make a group, change its members and owner, make
//! a join token (with the agent command to paste), remove a host or a mesh node. Each goes
//! through the same GraphQL mutation as the CLI, as the visitor; a refused one shows the
//! API's one-line message beside its form, with what was typed kept, and changes nothing.
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::{
    Done, Failure, Parts, Problem, Section, Visitor, allowed, beside, flash, invalid, redirect,
    submitted, text, when,
};
use crate::Web;
use crate::graphql::Capability;

/// A text field of `form`, labelled, keeping what was typed.
fn field(
    problem: Option<&Problem<'_>>,
    form: &str,
    name: &str,
    label: &str,
    value: &str,
    required: bool,
) -> Markup {
    let (bad, described) = invalid(problem, form);
    html! {
        div.field {
            label for={ (form) "-" (name) } { (label) }
            input id={ (form) "-" (name) } type="text" name=(name) value=(value) required[required]
                aria-invalid=[bad] aria-describedby=[described];
        }
    }
}

fn csrf(v: &Visitor) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A single value shown once, selectable, with what to do with it.
fn shown_once(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) type="text" readonly value=(value) size="80" spellcheck="false";
        }
    }
}

/// What the invite form sends.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Invite {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    email: String,
}

fn invite_form(
    v: &Visitor,
    status: StatusCode,
    typed: &Invite,
    problem: Option<&Problem<'_>>,
) -> Response {
    let body = html! {
        p { a href="/console/people" { "← People" } }
        p.muted { "The person gets a one-time link with which they register their passkey. A person who signs in through your identity provider or arrives by SCIM needs no invitation." }
        form id="invite" method="post" action="/console/people/invite" {
            (csrf(v))
            (field(problem, "invite", "name", "Login name", &typed.name, true))
            (field(problem, "invite", "display_name", "Display name", &typed.display_name, false))
            (field(problem, "invite", "email", "Email", &typed.email, false))
            (beside(problem, "invite"))
            button.primary type="submit" { "Invite" }
        }
    };
    v.render(status, Section::People, "Invite a person", body)
}

/// The visitor may do what `capability` names, or the 403 page with the policy engine's
/// recorded denial: for a form's page, so nobody fills in a form the API would refuse.
pub(crate) async fn may_or_refuse(
    app: &Web,
    v: &Visitor,
    capability: Capability,
    section: Section,
) -> Result<(), Response> {
    if v.may(capability) {
        return Ok(());
    }
    v.require_capability(
        app,
        capability,
        section,
        &format!("console:{}", section.path()),
    )
    .await
}

/// The visitor of a form's page: they may open `section` and do what `capability` names.
async fn form_visitor(
    app: &Web,
    parts: Parts,
    section: Section,
    capability: Capability,
) -> Result<Visitor, Response> {
    let v = allowed(app, parts, section).await?;
    may_or_refuse(app, &v, capability, section).await?;
    Ok(v)
}

/// `GET /console/people/invite`.
pub(crate) async fn invite_page(State(app): State<Web>, parts: Parts) -> Response {
    match form_visitor(&app, parts, Section::People, Capability::ManageUsers).await {
        Ok(v) => invite_form(&v, StatusCode::OK, &Invite::default(), None),
        Err(r) => r,
    }
}

fn optional(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// `POST /console/people/invite`: adds the person, then makes their enrollment link, shown
/// once.
pub(crate) async fn invite(
    State(app): State<Web>,
    parts: Parts,
    Form(form): Form<Invite>,
) -> Response {
    let v = match submitted(&app, parts, Section::People, "user.create", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let refused = |message: &str| {
        let problem = Problem {
            form: "invite",
            message,
        };
        invite_form(&v, StatusCode::BAD_REQUEST, &form, Some(&problem))
    };
    let create = "mutation($input: CreateUserInput!) { createUser(input: $input) { name } }";
    let input = json!({ "input": { "name": form.name.trim(), "displayName": optional(&form.display_name), "email": optional(&form.email) } });
    if let Err(f) = v.graphql(&app, create, input).await {
        return match f {
            Failure::Refused(m) => refused(&m),
            other => v.failed(Section::People, other),
        };
    }
    let link = "mutation($user: String!) { createEnrollmentLink(user: $user) { url expiresAt } }";
    let data = match v
        .graphql(&app, link, json!({ "user": form.name.trim() }))
        .await
    {
        Ok(data) => data,
        Err(f) => return v.failed(Section::People, f),
    };
    let made = &data["createEnrollmentLink"];
    let body = html! {
        p.notice.ok role="status" { "Invited " strong { (form.name.trim()) } ". Hand them this link; it is shown only now." }
        (shown_once("enrollment-link", "Enrollment link", &text(&made["url"])))
        p { "It works once, until " (when(&made["expiresAt"])) ", in the browser where they will keep their passkey." }
        p { a href="/console/people" { "Back to People" } }
    };
    v.ok(Section::People, "Invited", body)
}

/// `GET /console/groups/{name}[?done=]`: a group's members and owner, with the forms that
/// change them for a visitor who may.
pub(crate) async fn group_page(
    State(app): State<Web>,
    Path(name): Path<String>,
    Query(done): Query<Done>,
    parts: Parts,
) -> Response {
    let v = match allowed(&app, parts, Section::Groups).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    group_view(&app, &v, &name, StatusCode::OK, &done, None).await
}

async fn group_view(
    app: &Web,
    v: &Visitor,
    name: &str,
    status: StatusCode,
    done: &Done,
    problem: Option<&Problem<'_>>,
) -> Response {
    let q = "query($name: String!) { group(name: $name) { name description owner createdAt memberCount members(first: 10000) } }";
    let data = match v.graphql(app, q, json!({ "name": name })).await {
        Ok(data) => data,
        Err(Failure::Refused(m)) => return v.refusal(StatusCode::NOT_FOUND, Section::Groups, &m),
        Err(f) => return v.failed(Section::Groups, f),
    };
    let g = &data["group"];
    if g.is_null() {
        return v.refusal(
            StatusCode::NOT_FOUND,
            Section::Groups,
            &format!("group `{name}` not found"),
        );
    }
    let empty = Vec::new();
    let members = g["members"].as_array().unwrap_or(&empty);
    let manage = v.may(Capability::ManageGroups);
    let action = format!("/console/groups/{name}");
    let body = html! {
        (flash(done))
        p { a href="/console/groups" { "← Groups" } }
        dl {
            dt { "Description" } dd { (text(&g["description"])) }
            dt { "Owner" } dd #owner { @if g["owner"].is_null() { span.muted { "none" } } @else { (text(&g["owner"])) } }
            dt { "Since" } dd { (when(&g["createdAt"])) }
        }
        h2 { (super::count(g["memberCount"].as_u64().unwrap_or(0), "member", "members")) }
        @if members.is_empty() { p.muted { "No member." } } @else {
            ul #members { @for m in members {
                li { (text(m))
                    @if manage {
                        " "
                        form.inline method="post" action=(action) {
                            (csrf(v))
                            input type="hidden" name="change" value="remove";
                            input type="hidden" name="user" value=(text(m));
                            button type="submit" aria-label={ "Remove " (text(m)) " from " (name) } { "Remove" }
                        }
                    }
                }
            } }
        }
        (beside(problem, "remove"))
        @if manage {
            form id="add" method="post" action=(action) {
                fieldset { legend { "Add a member" }
                    (csrf(v))
                    input type="hidden" name="change" value="add";
                    (field(problem, "add", "user", "Login name", "", true))
                    (beside(problem, "add"))
                    button type="submit" { "Add" }
                }
            }
            form id="owner" method="post" action=(action) {
                fieldset { legend { "Owner" }
                    (csrf(v))
                    input type="hidden" name="change" value="owner";
                    input type="hidden" name="seen" value=(g["owner"].as_str().unwrap_or(""));
                    (field(problem, "owner", "user", "Login name (empty: no owner)", &text(&g["owner"]), false))
                    (beside(problem, "owner"))
                    button type="submit" { "Set the owner" }
                }
            }
        }
    };
    v.render(status, Section::Groups, &format!("Group {name}"), body)
}

/// A change to a group's membership or owner.
#[derive(Debug, Deserialize)]
pub(crate) struct GroupChange {
    csrf: String,
    /// `add`, `remove` or `owner`.
    change: String,
    #[serde(default)]
    user: String,
    /// With `owner`: the owner the form showed (empty: none).
    seen: Option<String>,
}

/// `POST /console/groups/{name}`: adds or removes a member, or sets the owner (refused as
/// stale when the owner changed since the form was shown).
pub(crate) async fn change_group(
    State(app): State<Web>,
    Path(name): Path<String>,
    parts: Parts,
    Form(form): Form<GroupChange>,
) -> Response {
    let action = match form.change.as_str() {
        "add" => "group.add_member",
        "remove" => "group.remove_member",
        _ => "group.set_owner",
    };
    let v = match submitted(&app, parts, Section::Groups, action, &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let user = form.user.trim();
    let (q, vars, done) = match form.change.as_str() {
        "add" => (
            "mutation($g: String!, $u: String!) { addGroupMember(group: $g, user: $u) { name } }",
            json!({ "g": name, "u": user }),
            "added",
        ),
        "remove" => (
            "mutation($g: String!, $u: String!) { removeGroupMember(group: $g, user: $u) { name } }",
            json!({ "g": name, "u": user }),
            "removed",
        ),
        // The owner the form showed rides along: the store refuses the change as stale if
        // the owner is another by now.
        "owner" => match form.seen.as_deref() {
            Some(seen) => (
                "mutation($g: String!, $u: String, $e: String) { setGroupOwner(group: $g, user: $u, expectedOwner: $e) { name } }",
                json!({ "g": name, "u": optional(user), "e": optional(seen.trim()) }),
                "owner",
            ),
            None => (
                "mutation($g: String!, $u: String) { setGroupOwner(group: $g, user: $u) { name } }",
                json!({ "g": name, "u": optional(user) }),
                "owner",
            ),
        },
        other => {
            return v.refusal(
                StatusCode::BAD_REQUEST,
                Section::Groups,
                &format!("unknown change `{other}`: add, remove or owner"),
            );
        }
    };
    let (status, message) = match v.graphql(&app, q, vars).await {
        Ok(_) => return redirect(&format!("/console/groups/{name}?done={done}")),
        Err(Failure::Refused(message)) => (StatusCode::BAD_REQUEST, message),
        Err(Failure::Stale(message)) => (StatusCode::CONFLICT, message),
        Err(f) => return v.failed(Section::Groups, f),
    };
    let problem = Problem {
        form: &form.change,
        message: &message,
    };
    group_view(&app, &v, &name, status, &Done::default(), Some(&problem)).await
}

/// What the new-group form sends.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewGroup {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

fn group_form(
    v: &Visitor,
    status: StatusCode,
    typed: &NewGroup,
    problem: Option<&Problem<'_>>,
) -> Response {
    let body = html! {
        p { a href="/console/groups" { "← Groups" } }
        form id="group" method="post" action="/console/groups/new" {
            (csrf(v))
            (field(problem, "group", "name", "Name", &typed.name, true))
            (field(problem, "group", "description", "Description", &typed.description, false))
            (beside(problem, "group"))
            button.primary type="submit" { "Make the group" }
        }
    };
    v.render(status, Section::Groups, "New group", body)
}

/// `GET /console/groups/new`.
pub(crate) async fn new_group_page(State(app): State<Web>, parts: Parts) -> Response {
    match form_visitor(&app, parts, Section::Groups, Capability::ManageGroups).await {
        Ok(v) => group_form(&v, StatusCode::OK, &NewGroup::default(), None),
        Err(r) => r,
    }
}

/// `POST /console/groups/new`.
pub(crate) async fn new_group(
    State(app): State<Web>,
    parts: Parts,
    Form(form): Form<NewGroup>,
) -> Response {
    let v = match submitted(&app, parts, Section::Groups, "group.create", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let q = "mutation($n: String!, $d: String) { createGroup(name: $n, description: $d) { name } }";
    let name = form.name.trim();
    match v
        .graphql(
            &app,
            q,
            json!({ "n": name, "d": optional(&form.description) }),
        )
        .await
    {
        Ok(_) => redirect(&format!("/console/groups/{name}?done=created")),
        Err(Failure::Refused(message)) => {
            let problem = Problem {
                form: "group",
                message: &message,
            };
            group_form(&v, StatusCode::BAD_REQUEST, &form, Some(&problem))
        }
        Err(f) => v.failed(Section::Groups, f),
    }
}

/// What the join-token form sends.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Join {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    host: String,
    /// `key=value`, separated by spaces or commas.
    #[serde(default)]
    labels: String,
    #[serde(default)]
    ttl: String,
}

fn join_form(
    v: &Visitor,
    status: StatusCode,
    typed: &Join,
    problem: Option<&Problem<'_>>,
) -> Response {
    let ttl = if typed.ttl.is_empty() {
        "1h"
    } else {
        typed.ttl.as_str()
    };
    let body = html! {
        p { a href="/console/hosts" { "← Hosts" } }
        p.muted { "A join token admits one host, once. Run the command it comes with on that host; its agent then renews the host's certificates by itself." }
        form id="join" method="post" action="/console/hosts/join" {
            (csrf(v))
            (field(problem, "join", "host", "Host name", &typed.host, true))
            (field(problem, "join", "labels", "Labels (key=value, space-separated)", &typed.labels, false))
            (field(problem, "join", "ttl", "Works for", ttl, true))
            (beside(problem, "join"))
            button.primary type="submit" { "Make a join token" }
        }
    };
    v.render(status, Section::Hosts, "Join a host", body)
}

/// `GET /console/hosts/join`.
pub(crate) async fn join_page(State(app): State<Web>, parts: Parts) -> Response {
    match form_visitor(&app, parts, Section::Hosts, Capability::ManageHosts).await {
        Ok(v) => join_form(&v, StatusCode::OK, &Join::default(), None),
        Err(r) => r,
    }
}

/// `POST /console/hosts/join`: the token, shown once, in the command to run on the host.
pub(crate) async fn join(State(app): State<Web>, parts: Parts, Form(form): Form<Join>) -> Response {
    let v = match submitted(
        &app,
        parts,
        Section::Hosts,
        "host.join_token.create",
        &form.csrf,
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let labels: Vec<&str> = form
        .labels
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|l| !l.is_empty())
        .collect();
    let ttl = Some(form.ttl.trim())
        .filter(|t| !t.is_empty())
        .unwrap_or("1h");
    let q = "mutation($host: String!, $labels: [String!]!, $ttl: String) { createJoinToken(host: $host, labels: $labels, ttl: $ttl) { token host expiresAt } }";
    let data = match v
        .graphql(
            &app,
            q,
            json!({ "host": form.host.trim(), "labels": labels, "ttl": ttl }),
        )
        .await
    {
        Ok(data) => data,
        Err(Failure::Refused(message)) => {
            let problem = Problem {
                form: "join",
                message: &message,
            };
            return join_form(&v, StatusCode::BAD_REQUEST, &form, Some(&problem));
        }
        Err(f) => return v.failed(Section::Hosts, f),
    };
    let made = &data["createJoinToken"];
    let command = format!(
        "warden agent --server {} --join-token {} --data-dir /var/lib/warden-agent",
        app.app.public_url.trim_end_matches('/'),
        text(&made["token"]),
    );
    let body = html! {
        p.notice.ok role="status" { "Join token for " strong { (text(&made["host"])) } ". It is shown only now." }
        p { "On that host, as root, run:" }
        (shown_once("agent-command", "Agent command", &command))
        p { "It works once, until " (when(&made["expiresAt"])) ". Add " code { "--mesh-interface wg0" } " to join the WireGuard mesh too." }
        p { a href="/console/hosts" { "Back to Hosts" } }
    };
    v.ok(Section::Hosts, "Join token", body)
}

/// What a removal form sends.
#[derive(Debug, Deserialize)]
pub(crate) struct Removal {
    csrf: String,
}

/// `POST /console/hosts/{name}/remove` and `POST /console/mesh/{name}/remove`.
async fn remove(
    app: &Web,
    parts: Parts,
    csrf: &str,
    mutation: &str,
    name: &str,
    done: &str,
) -> Response {
    let v = match submitted(app, parts, Section::Hosts, "host.remove", csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match v.graphql(app, mutation, json!({ "name": name })).await {
        Ok(_) => redirect(&format!("/console/hosts?done={done}")),
        Err(f) => v.failed(Section::Hosts, f),
    }
}

/// `POST /console/hosts/{name}/remove`: its agent can no longer renew.
pub(crate) async fn remove_host(
    State(app): State<Web>,
    Path(name): Path<String>,
    parts: Parts,
    Form(form): Form<Removal>,
) -> Response {
    let q = "mutation($name: String!) { removeHost(name: $name) }";
    remove(&app, parts, &form.csrf, q, &name, "host-removed").await
}

/// `POST /console/mesh/{name}/remove`: it leaves every peer list.
pub(crate) async fn remove_node(
    State(app): State<Web>,
    Path(name): Path<String>,
    parts: Parts,
    Form(form): Form<Removal>,
) -> Response {
    let q = "mutation($name: String!) { removeMeshNode(name: $name) }";
    remove(&app, parts, &form.csrf, q, &name, "node-removed").await
}

/// A remove button for the hosts page.
pub(crate) fn remove_button(v: &Visitor, action: &str, what: &str) -> Markup {
    html! {
        @if v.may(Capability::ManageHosts) {
            form.inline method="post" action=(action) {
                (csrf(v))
                button.danger type="submit" aria-label={ "Remove " (what) } { "Remove" }
            }
        }
    }
}
