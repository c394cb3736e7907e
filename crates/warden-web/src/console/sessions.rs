//! SSH sessions through the proxy: live and past, transcript search, and playback of a
//! recording in the terminal player (`/static/player.js`).
#![expect(
    clippy::indexing_slicing,
    reason = "reading serde_json::Value by key or position gives Null when absent; it never panics"
)]

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Failure, Parts, Problem, Section, Visitor, allowed, open, submitted, text, visitor, when,
};
use crate::Web;
use crate::graphql::Capability;

const SESSION_FIELDS: &str = "id principal login host source startedAt endedAt endReason
  recordings { file kind command bytes sha256 }";

#[derive(Debug, Deserialize)]
pub(crate) struct SessionQuery {
    /// Transcript search text.
    q: Option<String>,
    /// Only this person's (`alice` or `user:alice`).
    person: Option<String>,
    /// Only on this host.
    host: Option<String>,
    /// Started on or after this day (`2026-12-01`) or time (RFC 3339).
    from: Option<String>,
    /// Started before the end of this day, or this time.
    to: Option<String>,
    /// Only open ones.
    active: Option<String>,
}

fn given(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// A day as the start of it (`to`: the end of it), or a time as typed, for the API.
fn day(v: Option<&str>, end: bool) -> Option<String> {
    v.map(|d| {
        if d.len() == 10 && d.get(4..5) == Some("-") {
            format!("{d}T{}", if end { "23:59:59.999Z" } else { "00:00:00Z" })
        } else {
            d.to_owned()
        }
    })
}

/// `GET /console/sessions[?q=TEXT]`.
pub(crate) async fn list(
    State(app): State<Web>,
    Query(query): Query<SessionQuery>,
    parts: Parts,
) -> Response {
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let (person, host) = (given(query.person.as_ref()), given(query.host.as_ref()));
    let (from, to) = (given(query.from.as_ref()), given(query.to.as_ref()));
    let active = given(query.active.as_ref()).is_some();
    let filtered = person.is_some() || host.is_some() || from.is_some() || to.is_some() || active;
    let q = format!(
        "query($q: String!, $search: Boolean!, $person: String, $host: String, $since: String, $until: String, $active: Boolean) {{
          live: sshSessions(active: true, first: 100) {{ {SESSION_FIELDS} }}
          past: sshSessions(active: $active, principal: $person, host: $host, since: $since, until: $until, first: 50) @skip(if: $search) {{ {SESSION_FIELDS} }}
          found: sshSessionSearch(text: $q) @include(if: $search) {{ file lines session {{ {SESSION_FIELDS} }} }}
        }}"
    );
    let vars = json!({ "q": search.unwrap_or("-"), "search": search.is_some(), "person": person, "host": host,
        "since": day(from, false), "until": day(to, true), "active": active });
    let (v, data) = match open(&app, parts, Section::Sessions, &q, vars).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let empty = Vec::new();
    let live = data["live"].as_array().unwrap_or(&empty);
    let body = html! {
        section #live data-refresh="5" aria-labelledby="live-h" aria-live="polite" {
            h2 #live-h { "Live (" (live.len()) ")" }
            @if live.is_empty() { p.muted { "No session is open." } } @else { (table(live, "live-sessions")) }
        }
        section aria-labelledby="search-h" {
            h2 #search-h { "Search transcripts" }
            form method="get" action="/console/sessions" role="search" {
                label for="q" { "Text the terminal showed" }
                input #q type="search" name="q" value=(search.unwrap_or("")) maxlength="200";
                " "
                button type="submit" { "Search" }
            }
        }
        @if let Some(text_) = search {
            section aria-labelledby="found-h" {
                h2 #found-h { "Sessions showing “" (text_) "”" }
                @let found = data["found"].as_array().unwrap_or(&empty);
                @if found.is_empty() { p.muted { "No transcript among the latest 1000 sessions shows it." } }
                @for m in found {
                    article.match {
                        h3 { a href={ "/console/sessions/" (text(&m["session"]["id"])) "?file=" (text(&m["file"])) } {
                            (text(&m["session"]["principal"])) " as " (text(&m["session"]["login"])) "@" (text(&m["session"]["host"]))
                            ", " (when(&m["session"]["startedAt"])) } }
                        pre.policy { @for l in m["lines"].as_array().unwrap_or(&empty) { (text(l)) "\n" } }
                    }
                }
            }
        } @else {
            section aria-labelledby="past-h" {
                h2 #past-h { @if filtered { "Matching sessions" } @else { "Recent sessions" } }
                form.filters #session-filters method="get" action="/console/sessions" {
                    label for="person" { "Person" }
                    input #person type="text" name="person" value=(person.unwrap_or("")) size="12" placeholder="alice";
                    label for="host" { "Host" }
                    input #host type="text" name="host" value=(host.unwrap_or("")) size="12" placeholder="db-1";
                    label for="from" { "From" }
                    input #from type="date" name="from" value=(from.unwrap_or(""));
                    label for="to" { "To" }
                    input #to type="date" name="to" value=(to.unwrap_or(""));
                    label { input #active type="checkbox" name="active" value="1" checked[active]; " open only" }
                    button type="submit" { "Show" }
                }
                @let past = data["past"].as_array().unwrap_or(&empty);
                @if past.is_empty() { p.muted { @if filtered { "No session matches." } @else { "No session yet." } } } @else { (table(past, "past-sessions")) }
            }
        }
    };
    v.ok(Section::Sessions, "Sessions", body)
}

fn table(sessions: &[Value], id: &str) -> Markup {
    html! {
        div.scroll { table id=(id) {
            thead { tr { th scope="col" { "Started" } th scope="col" { "Who" } th scope="col" { "Login" }
                th scope="col" { "Host" } th scope="col" { "From" } th scope="col" { "Ended" } th scope="col" { "Recordings" } } }
            tbody { @for s in sessions {
                tr {
                    td { a href={ "/console/sessions/" (text(&s["id"])) } { (when(&s["startedAt"])) } }
                    td { (text(&s["principal"])) }
                    td { (text(&s["login"])) }
                    td { (text(&s["host"])) }
                    td { (text(&s["source"])) }
                    td { @if s["endedAt"].is_null() { span.badge.state-approved { "open" } }
                         @else { (when(&s["endedAt"])) br; span.muted { (text(&s["endReason"])) } } }
                    td { (s["recordings"].as_array().map_or(0, Vec::len)) }
                }
            } }
        } }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ShowQuery {
    /// The recording to play first.
    file: Option<String>,
    /// `ended` after the visitor ended it.
    done: Option<String>,
}

/// `GET /console/sessions/{id}`: the session, its recordings, and the player; an open one
/// with the form that ends it, for a visitor who may.
pub(crate) async fn show(
    State(app): State<Web>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
    parts: Parts,
) -> Response {
    let v = match allowed(&app, parts, Section::Sessions).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    view(&app, &v, &id, &query, StatusCode::OK, None).await
}

/// The form that ends a session.
#[derive(Debug, Deserialize)]
pub(crate) struct End {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/sessions/{id}/end`: ends it through the API, as the visitor, with the
/// reason its user is shown.
pub(crate) async fn end(
    State(app): State<Web>,
    Path(id): Path<String>,
    parts: Parts,
    axum::Form(form): axum::Form<End>,
) -> Response {
    let v = match submitted(
        &app,
        parts,
        Section::Sessions,
        "ssh.session.kill",
        &form.csrf,
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let q = "mutation($id: String!, $reason: String) { endSshSession(id: $id, reason: $reason) }";
    match v
        .graphql(&app, q, json!({ "id": id, "reason": form.reason }))
        .await
    {
        Ok(_) => super::redirect(&format!("/console/sessions/{id}?done=ended")),
        Err(Failure::Refused(message)) => {
            let problem = Problem {
                form: "end",
                message: &message,
            };
            let query = ShowQuery {
                file: None,
                done: None,
            };
            view(
                &app,
                &v,
                &id,
                &query,
                StatusCode::BAD_REQUEST,
                Some(&problem),
            )
            .await
        }
        Err(f) => v.failed(Section::Sessions, f),
    }
}

async fn view(
    app: &Web,
    v: &Visitor,
    id: &str,
    query: &ShowQuery,
    status: StatusCode,
    problem: Option<&Problem<'_>>,
) -> Response {
    let q = format!("query($id: String!) {{ sshSession(id: $id) {{ {SESSION_FIELDS} }} }}");
    let data = match v.graphql(app, &q, json!({ "id": id })).await {
        Ok(data) => data,
        Err(f) => return v.failed(Section::Sessions, f),
    };
    let s = &data["sshSession"];
    if s.is_null() {
        return v.refusal(
            StatusCode::NOT_FOUND,
            Section::Sessions,
            &format!("no session `{id}`"),
        );
    }
    let empty = Vec::new();
    let recordings = s["recordings"].as_array().unwrap_or(&empty);
    let playable: Vec<&Value> = recordings
        .iter()
        .filter(|r| r["kind"] != "subsystem")
        .collect();
    let chosen = query
        .file
        .as_deref()
        .and_then(|f| playable.iter().find(|r| r["file"] == f))
        .or(playable.first());
    let open_now = s["endedAt"].is_null();
    let (bad, described) = super::invalid(problem, "end");
    let body = html! {
        @if query.done.as_deref() == Some("ended") {
            p.notice.ok role="status" { "Ending the session: its user sees who ended it and why. The proxy holding it ends it within a second." }
        }
        dl {
            dt { "Who" } dd { (text(&s["principal"])) " as " code { (text(&s["login"])) } " on " (text(&s["host"])) }
            dt { "From" } dd { (text(&s["source"])) }
            dt { "Started" } dd { (when(&s["startedAt"])) }
            dt { "Ended" } dd { @if s["endedAt"].is_null() { "still open" } @else { (when(&s["endedAt"])) @if let Some(why) = s["endReason"].as_str() { " (" (why) ")" } } }
        }
        @if open_now && v.may(Capability::ManageHosts) {
            form id="end" method="post" action={ "/console/sessions/" (text(&s["id"])) "/end" } {
                fieldset { legend { "End this session" }
                    input type="hidden" name="csrf" value=(v.csrf);
                    div.field {
                        label for="end-reason" { "Reason (the user sees it)" }
                        input #end-reason type="text" name="reason" required maxlength="500" size="48"
                            aria-invalid=[bad] aria-describedby=[described];
                    }
                    (super::beside(problem, "end"))
                    button.danger type="submit" { "End the session" }
                }
            }
        }
        h2 { "Recordings" }
        @if recordings.is_empty() { p.muted { "Nothing recorded yet: recordings are kept when a channel closes." } }
        ul { @for r in recordings {
            li {
                @if r["kind"] == "subsystem" {
                    (text(&r["kind"])) " " code { (text(&r["command"])) } " (" (text(&r["bytes"])) " bytes, not a terminal)"
                } @else {
                    a href={ "/console/sessions/" (text(&s["id"])) "?file=" (text(&r["file"])) } { (text(&r["kind"])) @if let Some(c) = r["command"].as_str() { " " code { (c) } } }
                    " (" (text(&r["bytes"])) " bytes, SHA-256 " code.mono { (text(&r["sha256"]).get(..16).unwrap_or("")) "…" } ")"
                }
            }
        } }
        @if let Some(r) = chosen {
            section.player aria-label="Terminal playback" data-frames={ "/console/recordings/" (text(&r["file"])) } {
                div.controls {
                    button #play type="button" { "Play" }
                    label for="speed" { "Speed" }
                    select #speed { option value="1" { "1×" } option value="2" selected { "2×" } option value="4" { "4×" } option value="16" { "16×" } }
                    label for="seek" { "Position" }
                    input #seek type="range" min="0" max="1000" value="0";
                    output #clock for="seek" { "0:00" }
                }
                pre #screen.term aria-live="off" {}
                p #player-status role="status" {}
            }
            script src="/static/player.js" defer {}
        }
    };
    v.render(status, Section::Sessions, "Session", body)
}

/// `GET /console/recordings/{file}`: the recording as the player's frames (JSON). Its
/// SHA-256 is checked against the audit log by the API before it is played.
pub(crate) async fn frames(
    State(app): State<Web>,
    Path(file): Path<String>,
    parts: Parts,
) -> Response {
    let v = match visitor(&app, parts).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let json_error = |status: StatusCode, message: &str| {
        (status, axum::Json(json!({ "error": message }))).into_response()
    };
    let q = "query($f: String!) { sshRecording(file: $f) }";
    let cast = match v.graphql(&app, q, json!({ "f": file })).await {
        Ok(d) => text(&d["sshRecording"]),
        Err(super::Failure::Forbidden(m)) => return json_error(StatusCode::FORBIDDEN, &m),
        Err(super::Failure::Refused(m)) => return json_error(StatusCode::BAD_REQUEST, &m),
        Err(super::Failure::Stale(m)) => return json_error(StatusCode::CONFLICT, &m),
        Err(super::Failure::Internal) => {
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let playback = match tokio::task::spawn_blocking(move || super::terminal::playback(&cast)).await
    {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("recording `{file}` cannot be played: {e}"),
            );
        }
        Err(_) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let mut response = axum::Json(playback).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
