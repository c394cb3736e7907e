//! The inventory: people, groups, API tokens and hosts (with their mesh nodes).
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::{Done, Parts, Section, flash, open, redirect, submitted, text, when};
use crate::Web;

/// Rows on a page.
const PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
pub(crate) struct Cursor {
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PeopleQuery {
    after: Option<String>,
    /// `disabled` or `enabled`, after the change.
    done: Option<String>,
    /// Whom the change was to.
    who: Option<String>,
}

/// `GET /console/people[?after=CURSOR]`: people by name, a page at a time, each with a form to
/// disable (offboard) or enable them. After disabling, what the offboarding ended (from the
/// audit event, for a visitor who may read the log).
pub(crate) async fn people(
    State(app): State<Web>,
    Query(query): Query<PeopleQuery>,
    parts: Parts,
) -> Response {
    let disabled = query.done.as_deref() == Some("disabled");
    let who = query.who.as_deref().unwrap_or_default();
    let q = "query($after: String, $first: Int!, $target: String!, $ended: Boolean!) { users(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor } nodes { name displayName email createdAt disabled disabledAt groups } }
      ended: auditEvents(action: \"user.disable\", target: $target, outcome: \"success\", newestFirst: true, first: 1) @include(if: $ended) { details } }";
    let v = match super::allowed(&app, parts, Section::People).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Only a visitor who may read the log is shown the offboarding's event (asking otherwise
    // would be a recorded denial).
    let ended = disabled && !who.is_empty() && v.sections.contains(&Section::Audit);
    let vars = json!({ "after": query.after, "first": PAGE, "target": format!("user:{who}"), "ended": ended });
    let data = match v.graphql(&app, q, vars).await {
        Ok(data) => data,
        Err(f) => return v.failed(Section::People, f),
    };
    let empty = Vec::new();
    let users = data["users"]["nodes"].as_array().unwrap_or(&empty);
    let next = data["users"]["pageInfo"]["endCursor"]
        .as_str()
        .filter(|_| data["users"]["pageInfo"]["hasNextPage"] == true);
    let details = &data["ended"][0]["details"];
    let body = html! {
        @match query.done.as_deref() {
            Some("disabled") => p.notice.ok role="status" {
                "Disabled " strong { (who) } "."
                @if details.is_object() {
                    " Offboarding ended "
                    (super::count(details["tokens_revoked"].as_u64().unwrap_or(0), "API token", "API tokens")) ", "
                    (super::count(details["web_sessions_ended"].as_u64().unwrap_or(0), "web session", "web sessions")) ", "
                    (super::count(details["ssh_certificates_revoked"].as_u64().unwrap_or(0), "SSH certificate", "SSH certificates")) ", "
                    (super::count(details["grants_ended"].as_u64().unwrap_or(0), "temporary grant", "temporary grants")) " and "
                    (super::count(details["mesh_devices_removed"].as_u64().unwrap_or(0), "mesh device", "mesh devices")) "."
                }
            },
            Some("enabled") => p.notice.ok role="status" { "Enabled " strong { (who) } ". They sign in afresh; nothing offboarding ended comes back." },
            _ => {},
        }
        @if v.may(crate::graphql::Capability::ManageUsers) { p { a.button href="/console/people/invite" { "Invite a person" } } }
        div.scroll { table #people {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Display name" } th scope="col" { "Email" }
                th scope="col" { "Groups" } th scope="col" { "Since" } th scope="col" { "State" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody { @for u in users {
                @let name = text(&u["name"]);
                tr {
                    td { a href={ "/console/people/" (name) } { (name) } }
                    td { (text(&u["displayName"])) }
                    td { (text(&u["email"])) }
                    td { @for g in u["groups"].as_array().unwrap_or(&empty) { code { (text(g)) } " " } }
                    td { (when(&u["createdAt"])) }
                    td { @if u["disabled"] == true { span.state-denied { "disabled " (when(&u["disabledAt"])) } } @else { "active" } }
                    td {
                        @let (verb, label) = if u["disabled"] == true { ("enable", "Enable") } else { ("disable", "Disable") };
                        form method="post" action={ "/console/people/" (name) "/" (verb) } {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" aria-label={ (label) " " (name) } { (label) }
                        }
                    }
                }
            } }
        } }
        nav.pager aria-label="Pages" {
            @if query.after.is_some() { a href="/console/people" { "First page" } }
            @if let Some(n) = next { a href={ "/console/people?after=" (n) } rel="next" { "Next page" } }
        }
    };
    v.ok(Section::People, "People", body)
}

/// `POST /console/people/{name}/disable` and `…/enable`: through the API, as the visitor.
pub(crate) async fn set_disabled(
    State(app): State<Web>,
    Path((name, verb)): Path<(String, String)>,
    parts: Parts,
    Form(form): Form<CsrfForm>,
) -> Response {
    let v = match submitted(&app, parts, Section::People, "user.disable", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (q, done) = match verb.as_str() {
        "disable" => (
            "mutation($n: String!) { disableUser(name: $n) { name } }",
            "disabled",
        ),
        "enable" => (
            "mutation($n: String!) { enableUser(name: $n) { name } }",
            "enabled",
        ),
        other => {
            return v.refusal(
                axum::http::StatusCode::NOT_FOUND,
                Section::People,
                &format!("unknown change `{other}`: disable or enable"),
            );
        }
    };
    match v.graphql(&app, q, json!({ "n": name })).await {
        Ok(_) => {
            let back = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("done", done)
                .append_pair("who", &name)
                .finish();
            redirect(&format!("/console/people?{back}"))
        }
        Err(f) => v.failed(Section::People, f),
    }
}

/// `GET /console/groups[?after=CURSOR]`.
pub(crate) async fn groups(
    State(app): State<Web>,
    Query(cursor): Query<Cursor>,
    parts: Parts,
) -> Response {
    let q = "query($after: String, $first: Int!) {
      groups(first: $first, after: $after) { pageInfo { hasNextPage endCursor } nodes { name description owner createdAt memberCount members(first: 10) } }
      grants(active: true) { user group expiresAt grantedBy } }";
    let (v, data) = match open(
        &app,
        parts,
        Section::Groups,
        q,
        json!({ "after": cursor.after, "first": PAGE }),
    )
    .await
    {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let groups = data["groups"]["nodes"].as_array().unwrap_or(&empty);
    let grants = data["grants"].as_array().unwrap_or(&empty);
    let next = data["groups"]["pageInfo"]["endCursor"]
        .as_str()
        .filter(|_| data["groups"]["pageInfo"]["hasNextPage"] == true);
    let body = html! {
        @if v.may(crate::graphql::Capability::ManageGroups) { p { a.button href="/console/groups/new" { "New group" } } }
        div.scroll { table #groups {
            thead { tr { th scope="col" { "Group" } th scope="col" { "Description" } th scope="col" { "Owner" }
                th scope="col" { "Members" } th scope="col" { "Temporary grants" } } }
            tbody { @for g in groups {
                @let members = g["members"].as_array().unwrap_or(&empty);
                @let temporary: Vec<_> = grants.iter().filter(|x| x["group"] == g["name"]).collect();
                tr {
                    td { a href={ "/console/groups/" (text(&g["name"])) } { (text(&g["name"])) } }
                    td { (text(&g["description"])) }
                    td { (text(&g["owner"])) }
                    @let count = g["memberCount"].as_i64().unwrap_or(0);
                    @let more = count - i64::try_from(members.len()).unwrap_or(0);
                    td { (count) @if !members.is_empty() { ": " }
                        @for m in members { (text(m)) " " }
                        @if more > 0 { span.muted { "and " (more) " more" } } }
                    td { @for x in temporary { div { (text(&x["user"])) " until " (when(&x["expiresAt"])) } } }
                }
            } }
        } }
        nav.pager aria-label="Pages" {
            @if cursor.after.is_some() { a href="/console/groups" { "First page" } }
            @if let Some(n) = next { a href={ "/console/groups?after=" (n) } rel="next" { "Next page" } }
        }
    };
    v.ok(Section::Groups, "Groups", body)
}

/// Hosts (and mesh nodes) on a page.
const HOSTS_PAGE: usize = 100;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct HostsQuery {
    /// The hosts after this name.
    after: Option<String>,
    #[serde(flatten)]
    done: Done,
}

/// `GET /console/hosts[?after=NAME]`: joined hosts with their health, 100 a page, and the
/// WireGuard mesh's nodes.
pub(crate) async fn hosts(
    State(app): State<Web>,
    Query(query): Query<HostsQuery>,
    parts: Parts,
) -> Response {
    let done = &query.done;
    let q = "query { hosts { name labels addresses sshdAddr joinedAt lastContactAt online agentVersion certificateExpiresAt }
      meshNodes { name kind owner ipv4 endpoint live } }";
    let (v, data) = match open(&app, parts, Section::Hosts, q, json!({})).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let all = data["hosts"].as_array().unwrap_or(&empty);
    let after = query.after.as_deref().unwrap_or_default();
    let from = all
        .iter()
        .take_while(|h| h["name"].as_str().unwrap_or_default() <= after)
        .count();
    let hosts: Vec<&serde_json::Value> = all.iter().skip(from).take(HOSTS_PAGE).collect();
    let next = (from + hosts.len() < all.len())
        .then(|| hosts.last().map(|h| text(&h["name"])))
        .flatten();
    let nodes = data["meshNodes"].as_array().unwrap_or(&empty);
    let more_nodes = nodes.len().saturating_sub(HOSTS_PAGE);
    let body = html! {
        (flash(done))
        @if v.may(crate::graphql::Capability::ManageHosts) { p { a.button href="/console/hosts/join" { "Join a host" } } }
        h2 { "Hosts (" (all.len()) ")" }
        @if all.is_empty() { p.muted { "No host has joined. Make a join token for one with " code { "warden admin join-token create --host NAME" } " on the server, then run the " code { "warden agent" } " command it prints on that host." } } @else {
            div.scroll { table #hosts {
                thead { tr { th scope="col" { "Host" } th scope="col" { "State" } th scope="col" { "Last contact" } th scope="col" { "Agent" } th scope="col" { "Certificate expires" } th scope="col" { "Labels" } th scope="col" { "Addresses" } th scope="col" { "sshd" } th scope="col" { "Joined" } th scope="col" { span.visually-hidden { "Action" } } } }
                tbody { @for h in &hosts {
                    tr {
                        td { (text(&h["name"])) }
                        td.health { @if h["online"] == true { span.badge.state-approved { "online" } } @else { span.badge.state-denied { "offline" } } }
                        td { (when(&h["lastContactAt"])) }
                        td.agent { @if h["agentVersion"].is_null() { span.muted { "unknown" } } @else { code { (text(&h["agentVersion"])) } } }
                        td { @if h["certificateExpiresAt"].is_null() { span.state-denied { "none valid: join again" } } @else { (when(&h["certificateExpiresAt"])) } }
                        td { @for l in h["labels"].as_array().unwrap_or(&empty) { code { (text(l)) } " " } }
                        td { @for a in h["addresses"].as_array().unwrap_or(&empty) { (text(a)) " " } }
                        td { (text(&h["sshdAddr"])) }
                        td { (when(&h["joinedAt"])) }
                        td { (super::manage::remove_button(&v, &format!("/console/hosts/{}/remove", text(&h["name"])), &text(&h["name"]))) }
                    }
                } }
            } }
        }
        nav.pager aria-label="Pages of hosts" {
            @if from > 0 { a href="/console/hosts" { "First page" } }
            @if let Some(n) = &next { a href={ "/console/hosts?after=" (n) } rel="next" { "Next " (HOSTS_PAGE) } }
        }
        h2 { "Mesh nodes (" (nodes.len()) ")" }
        @if nodes.is_empty() { p.muted { "No node has enrolled in the WireGuard mesh." } } @else {
            div.scroll { table #mesh-nodes {
                thead { tr { th scope="col" { "Node" } th scope="col" { "Kind" } th scope="col" { "Owner" } th scope="col" { "Address" } th scope="col" { "Endpoint" } th scope="col" { "In the mesh" } th scope="col" { span.visually-hidden { "Action" } } } }
                tbody { @for n in nodes.iter().take(HOSTS_PAGE) {
                    tr {
                        td { (text(&n["name"])) } td { (text(&n["kind"])) } td { (text(&n["owner"])) }
                        td { code { (text(&n["ipv4"])) } } td { (text(&n["endpoint"])) }
                        td { @if n["live"] == true { "yes" } @else { span.muted { "no (key expired)" } } }
                        td { (super::manage::remove_button(&v, &format!("/console/mesh/{}/remove", text(&n["name"])), &text(&n["name"]))) }
                    }
                } }
            } }
        }
        @if more_nodes > 0 { p.muted { "and " (more_nodes) " more (the API's " code { "meshNodes" } " lists them all)." } }
    };
    v.ok(Section::Hosts, "Hosts", body)
}

/// `GET /console/tokens`: every API token, newest first, and a form to revoke each live one.
pub(crate) async fn tokens(
    State(app): State<Web>,
    Query(done): Query<Done>,
    parts: Parts,
) -> Response {
    let q = "query { tokens { id name role user createdBy createdAt expiresAt revokedAt status } }";
    let (v, data) = match open(&app, parts, Section::Tokens, q, json!({})).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let tokens = data["tokens"].as_array().unwrap_or(&empty);
    let body = html! {
        (flash(&done))
        p.muted { "Make a token with " code { "warden admin token create --name NAME --role ROLE" } "; it is shown once." }
        div.scroll { table #tokens {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Id" } th scope="col" { "Role" } th scope="col" { "Acts as" }
                th scope="col" { "Made by" } th scope="col" { "Made" } th scope="col" { "Expires" } th scope="col" { "State" } th scope="col" { span.visually-hidden { "Action" } } } }
            tbody { @for t in tokens {
                tr {
                    td { (text(&t["name"])) }
                    td { code { (text(&t["id"])) } }
                    td { (text(&t["role"])) }
                    td { @if t["user"].is_null() { "—" } @else { (text(&t["user"])) } }
                    td { (text(&t["createdBy"])) }
                    td { (when(&t["createdAt"])) }
                    td { (when(&t["expiresAt"])) }
                    td { @match t["status"].as_str() {
                        Some("ACTIVE") => "active",
                        Some("REVOKED") => span.state-denied { "revoked " (when(&t["revokedAt"])) },
                        _ => span.muted { "expired" },
                    } }
                    td { @if t["status"] == "ACTIVE" {
                        form method="post" action={ "/console/tokens/" (text(&t["id"])) "/revoke" } {
                            input type="hidden" name="csrf" value=(v.csrf);
                            button type="submit" aria-label={ "Revoke " (text(&t["name"])) } { "Revoke" }
                        }
                    } }
                }
            } }
        } }
    };
    v.ok(Section::Tokens, "Tokens", body)
}

/// A form that carries only the session's CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

/// `POST /console/tokens/{id}/revoke`: revokes a token through the API, as the visitor.
pub(crate) async fn revoke_token(
    State(app): State<Web>,
    Path(id): Path<String>,
    parts: Parts,
    Form(form): Form<CsrfForm>,
) -> Response {
    let v = match submitted(&app, parts, Section::Tokens, "token.revoke", &form.csrf).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    match v
        .graphql(
            &app,
            "mutation($t: String!) { revokeToken(token: $t) { id } }",
            json!({ "t": id }),
        )
        .await
    {
        Ok(_) => redirect("/console/tokens?done=revoked"),
        Err(f) => v.failed(Section::Tokens, f),
    }
}

/// `GET /console/people/{name}`: a person — who they are, their groups and temporary grants,
/// the API tokens acting as them, their mesh devices, and (for a visitor who may read the log)
/// their recent SSH sessions and what they did lately.
pub(crate) async fn person(
    State(app): State<Web>,
    Path(name): Path<String>,
    parts: Parts,
) -> Response {
    let v = match super::allowed(&app, parts, Section::People).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let audit = v.may(crate::graphql::Capability::ReadAudit);
    let tokens = v.may(crate::graphql::Capability::ReadTokens);
    let q = "query($name: String!, $principal: String!, $actor: String!, $audit: Boolean!, $tokens: Boolean!) {
      user(name: $name) { name displayName email createdAt disabled disabledAt groups }
      grants(active: true) { user group expiresAt grantedBy }
      meshNodes { name kind owner ipv4 live }
      tokens @include(if: $tokens) { id name role user expiresAt status }
      sessions: sshSessions(principal: $principal, first: 20) @include(if: $audit) { id login host startedAt endedAt endReason }
      events: auditEvents(actor: $actor, newestFirst: true, first: 20) @include(if: $audit) { seq time action target outcome } }";
    let vars = json!({ "name": name, "principal": format!("user:{name}"), "actor": format!("user:{name}"),
        "audit": audit, "tokens": tokens });
    let data = match v.graphql(&app, q, vars).await {
        Ok(d) => d,
        Err(super::Failure::Refused(m)) => {
            return v.refusal(axum::http::StatusCode::NOT_FOUND, Section::People, &m);
        }
        Err(f) => return v.failed(Section::People, f),
    };
    let u = &data["user"];
    if u.is_null() {
        return v.refusal(
            axum::http::StatusCode::NOT_FOUND,
            Section::People,
            &format!("user `{name}` not found"),
        );
    }
    let empty = Vec::new();
    let mine = |key: &str, field: &str| -> Vec<&serde_json::Value> {
        data[key]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter(|x| x[field] == name.as_str())
            .collect()
    };
    let grants = mine("grants", "user");
    let devices = mine("meshNodes", "owner");
    let their_tokens = mine("tokens", "user");
    let body = html! {
        p { a href="/console/people" { "← People" } }
        dl #person {
            dt { "Display name" } dd { (text(&u["displayName"])) }
            dt { "Email" } dd { (text(&u["email"])) }
            dt { "Since" } dd { (when(&u["createdAt"])) }
            dt { "State" } dd { @if u["disabled"] == true { span.state-denied { "disabled " (when(&u["disabledAt"])) } } @else { "active" } }
            dt { "Groups" } dd #person-groups { @for g in u["groups"].as_array().unwrap_or(&empty) { a href={ "/console/groups/" (text(g)) } { code { (text(g)) } } " " } }
        }
        h2 { "Temporary grants" }
        @if grants.is_empty() { p.muted { "None in force." } } @else {
            ul { @for g in &grants { li { code { (text(&g["group"])) } " until " (when(&g["expiresAt"])) ", granted by " (text(&g["grantedBy"])) } } }
        }
        @if tokens {
            h2 { "API tokens acting as them" }
            @if their_tokens.is_empty() { p.muted { "None." } } @else {
                ul { @for t in &their_tokens { li { (text(&t["name"])) " (" (text(&t["role"])) "), " (text(&t["status"]).to_lowercase()) ", expires " (when(&t["expiresAt"])) } } }
            }
        }
        h2 { "Mesh devices" }
        @if devices.is_empty() { p.muted { "None." } } @else {
            ul { @for d in &devices { li { (text(&d["name"])) " " code { (text(&d["ipv4"])) } @if d["live"] != true { span.muted { " (key expired)" } } } } }
        }
        @if audit {
            h2 { "Recent SSH sessions" }
            @let sessions = data["sessions"].as_array().unwrap_or(&empty);
            @if sessions.is_empty() { p.muted { "None." } } @else {
                div.scroll { table #person-sessions {
                    thead { tr { th scope="col" { "Started" } th scope="col" { "As" } th scope="col" { "Host" } th scope="col" { "Ended" } } }
                    tbody { @for s in sessions {
                        tr { td { a href={ "/console/sessions/" (text(&s["id"])) } { (when(&s["startedAt"])) } }
                             td { code { (text(&s["login"])) } } td { (text(&s["host"])) }
                             td { @if s["endedAt"].is_null() { "open" } @else { (when(&s["endedAt"])) } } }
                    } }
                } }
            }
            h2 { "What they did lately" }
            @let events = data["events"].as_array().unwrap_or(&empty);
            @if events.is_empty() { p.muted { "Nothing recorded." } } @else {
                div.scroll { table #person-events {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Outcome" } } }
                    tbody { @for e in events {
                        tr { td { (when(&e["time"])) } td { code { (text(&e["action"])) } } td { (text(&e["target"])) }
                             td { span class={ "outcome-" (text(&e["outcome"])) } { (text(&e["outcome"])) } } }
                    } }
                } }
                p { a href={ "/console/audit?actor=user%3A" (name) } { "All their events" } }
            }
        }
    };
    let title = format!("{} ({name})", text(&u["displayName"]));
    v.ok(Section::People, &title, body)
}
