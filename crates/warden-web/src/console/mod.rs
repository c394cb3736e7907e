//! The web console: server-rendered pages for people, under `/console`.
//!
//! Each page is a GraphQL query run in-process as the signed-in person, rendered to HTML by
//! maud (which escapes every value it splices). The console can therefore show and do nothing
//! the API would not: the same resolvers authorize through the policy engine, record
//! denials, validate input and write audited changes. A page also asks for its own capability
//! first, so a person without it gets a 403 page and a recorded denial, not an empty table.
//!
//! Forms post with the session's CSRF token (derived from the session secret, compared in
//! constant time); a mismatch is refused and recorded. Every response carries a strict
//! Content-Security-Policy (scripts and styles from this origin only, no inline script),
//! `frame-ancestors 'none'` and `X-Frame-Options: DENY`. JavaScript is used only for the
//! passkey ceremonies, the terminal player and small conveniences; every page works without
//! it otherwise.

mod access;
mod audit;
mod checklist;
mod compliance;
mod directory;
mod finding;
mod layout;
mod manage;
mod policy;
mod policy_edit;
mod reviews;
mod sessions;
mod settings;
pub(crate) mod terminal;
mod vulns;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use warden_api::accounts::{Session, SessionStage};
use warden_policy::Object;
use warden_runtime::request::AuditContext;

use crate::Web;
use crate::graphql::{Caller, Capability, Refused};
use crate::request::{Anonymous, deny};
pub(crate) use layout::{CSP_CLI_CONSENT, html_response, plain};
pub use layout::{error_page, not_found_page};
pub use settings::Settings;

/// Declares the console's routes once: [`routes`] builds the router from the table, and
/// [`ROUTES`] lists it, so a test can walk every route (a route added here is walked too).
macro_rules! console_routes {
    ($($method:ident $path:literal => $handler:expr;)*) => {
        /// Every route of the console, as (method, path), in the order they are declared.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// The console's routes (merged into the public listener's).
        pub fn routes() -> Router<Web> {
            Router::new()$(.route($path, $method($handler)))*
        }
    };
}

console_routes! {
    get "/console" => access::my_access;
    post "/console/access/request" => access::request;
    get "/console/approvals" => access::approvals;
    post "/console/approvals/{id}" => access::decide;
    get "/console/reviews" => reviews::list;
    get "/console/reviews/new" => reviews::new_page;
    post "/console/reviews/new" => reviews::create;
    get "/console/reviews/{id}" => reviews::show;
    post "/console/reviews/{id}/close" => reviews::close;
    post "/console/reviews/{id}" => reviews::decide;
    get "/console/sessions" => sessions::list;
    get "/console/sessions/{id}" => sessions::show;
    post "/console/sessions/{id}/end" => sessions::end;
    get "/console/recordings/{file}" => sessions::frames;
    get "/console/audit" => audit::log;
    get "/console/compliance" => compliance::status;
    get "/console/people" => directory::people;
    get "/console/people/invite" => manage::invite_page;
    post "/console/people/invite" => manage::invite;
    get "/console/people/{name}" => directory::person;
    post "/console/people/{name}/{verb}" => directory::set_disabled;
    get "/console/groups" => directory::groups;
    get "/console/groups/new" => manage::new_group_page;
    post "/console/groups/new" => manage::new_group;
    get "/console/groups/{name}" => manage::group_page;
    post "/console/groups/{name}" => manage::change_group;
    get "/console/hosts" => directory::hosts;
    get "/console/hosts/join" => manage::join_page;
    post "/console/hosts/join" => manage::join;
    post "/console/hosts/{name}/remove" => manage::remove_host;
    post "/console/mesh/{name}/remove" => manage::remove_node;
    get "/console/tokens" => directory::tokens;
    post "/console/tokens/{id}/revoke" => directory::revoke_token;
    get "/console/policy" => policy::show;
    get "/console/policy/edit" => policy_edit::editor;
    post "/console/policy/edit" => policy_edit::submit;
    get "/console/vulns" => vulns::dashboard;
    get "/console/vulns/{id}" => finding::show;
    post "/console/vulns/{id}" => finding::decide;
    get "/console/settings" => settings::show;
    get "/static/console.css" => layout::css;
    get "/static/console.js" => layout::js;
    get "/static/player.js" => layout::player_js;
    get "/static/mark.svg" => layout::mark;
    get "/favicon.ico" => layout::mark;
}

/// A page of the console and the capability it needs; the navigation shows the pages the
/// visitor may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Access,
    Approvals,
    Reviews,
    Sessions,
    Audit,
    Compliance,
    People,
    Groups,
    Tokens,
    Hosts,
    Policy,
    Vulns,
    Settings,
    Account,
}

impl Section {
    const ALL: [Section; 14] = [
        Section::Access,
        Section::Approvals,
        Section::Reviews,
        Section::Sessions,
        Section::Audit,
        Section::Compliance,
        Section::People,
        Section::Groups,
        Section::Tokens,
        Section::Hosts,
        Section::Policy,
        Section::Vulns,
        Section::Settings,
        Section::Account,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Access => "My access",
            Section::Approvals => "Approvals",
            Section::Reviews => "Reviews",
            Section::Sessions => "Sessions",
            Section::Audit => "Audit log",
            Section::Compliance => "Compliance",
            Section::People => "People",
            Section::Groups => "Groups",
            Section::Tokens => "Tokens",
            Section::Hosts => "Hosts",
            Section::Policy => "Policy",
            Section::Vulns => "Vulnerabilities",
            Section::Settings => "Settings",
            Section::Account => "Account",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Section::Access => "/console",
            Section::Approvals => "/console/approvals",
            Section::Reviews => "/console/reviews",
            Section::Sessions => "/console/sessions",
            Section::Audit => "/console/audit",
            Section::Compliance => "/console/compliance",
            Section::People => "/console/people",
            Section::Groups => "/console/groups",
            Section::Tokens => "/console/tokens",
            Section::Hosts => "/console/hosts",
            Section::Policy => "/console/policy",
            Section::Vulns => "/console/vulns",
            Section::Settings => "/console/settings",
            Section::Account => "/account",
        }
    }

    /// What the page needs; `Viewer` is any signed-in person (the page then shows only what
    /// the API lets them see: their own requests, the reviews assigned to them).
    fn capability(self) -> Capability {
        match self {
            Section::Access | Section::Approvals | Section::Reviews | Section::Account => {
                Capability::Viewer
            }
            Section::Sessions | Section::Audit | Section::Compliance => Capability::ReadAudit,
            Section::People | Section::Groups => Capability::ReadDirectory,
            Section::Hosts => Capability::ReadDirectory,
            Section::Tokens => Capability::ReadTokens,
            Section::Settings => Capability::ManagePolicy,
            Section::Policy => Capability::ReadPolicy,
            Section::Vulns => Capability::ReadVulns,
        }
    }
}

/// The signed-in person behind a console request.
pub(crate) struct Visitor {
    /// Their browser session.
    pub session: Session,
    /// The token their forms carry.
    pub csrf: String,
    /// The context their reads and changes are recorded under.
    pub audit: AuditContext,
    /// The pages they may open, for the navigation.
    pub sections: Vec<Section>,
    may: Vec<Capability>,
    presented: warden_identity::PresentedToken,
}

impl Visitor {
    /// The visitor of a request, or where to send the browser instead: the sign-in page
    /// without a session, the account page until a passkey is registered and confirmed.
    pub(crate) async fn of(
        app: &Web,
        ctx: AuditContext,
        headers: &HeaderMap,
    ) -> Result<Visitor, Response> {
        let Some((session, presented)) = crate::sign_in::current_session(app, headers, &ctx).await
        else {
            return Err(redirect("/"));
        };
        if session.stage != SessionStage::Active {
            return Err(redirect("/account"));
        }
        let audit = AuditContext {
            actor: crate::sign_in::session_actor(&session),
            ..ctx
        };
        let may: Vec<Capability> = match app.subject(&audit.actor).await {
            Ok(Some(subject)) => Capability::ALL
                .into_iter()
                .filter(|c| match c.cedar() {
                    None => true,
                    Some((action, api)) => {
                        app.policy
                            .decide(
                                &subject,
                                action,
                                &Object::Api(api.to_owned()),
                                &serde_json::json!({}),
                            )
                            .decided
                            .allow
                    }
                })
                .collect(),
            Ok(None) => return Err(redirect("/")),
            Err(err) => {
                tracing::error!(error = %err, "console: subject lookup failed");
                return Err(unavailable());
            }
        };
        let sections = Section::ALL
            .into_iter()
            .filter(|s| may.contains(&s.capability()))
            .collect();
        Ok(Visitor {
            csrf: presented.derive("csrf"),
            session,
            audit,
            sections,
            may,
            presented,
        })
    }

    /// Whether the policy lets the visitor do what `capability` names, as decided when the
    /// request came in: for showing a form or not. The change itself is decided (and a
    /// denial recorded) again by the resolver it goes through.
    pub(crate) fn may(&self, capability: Capability) -> bool {
        self.may.contains(&capability)
    }

    /// The person's user name.
    pub(crate) fn name(&self) -> &str {
        self.session.user.name.as_str()
    }

    /// Whether the visitor may open `section`: the navigation's decision, made for this
    /// request; otherwise the policy engine is asked again so the denial is recorded with its
    /// policies, and it is answered with a 403 page.
    pub(crate) async fn require(&self, app: &Web, section: Section) -> Result<(), Response> {
        if self.sections.contains(&section) {
            return Ok(());
        }
        let target = format!("console:{}", section.path());
        self.require_capability(app, section.capability(), section, &target)
            .await
    }

    /// As [`Visitor::require`] for a capability beyond the page's own: refused with a 403 page
    /// and the policy engine's recorded denial when the visitor lacks it.
    pub(crate) async fn require_capability(
        &self,
        app: &Web,
        capability: Capability,
        section: Section,
        target: &str,
    ) -> Result<(), Response> {
        match app.check(&self.audit, capability, target).await {
            Ok(()) => Ok(()),
            Err(Refused::Denied(reason)) => Err(self.refusal(
                StatusCode::FORBIDDEN,
                section,
                &format!("permission denied: {reason}"),
            )),
            Err(Refused::Store(err)) => {
                tracing::error!(error = %err, "console: authorization could not be recorded");
                Err(unavailable())
            }
        }
    }

    /// Checks a form's CSRF token; a mismatch is recorded as a denial of `action`.
    pub(crate) async fn check_form(
        &self,
        app: &Web,
        section: Section,
        action: &'static str,
        sent: &str,
    ) -> Result<(), Response> {
        if crate::sign_in::csrf_ok(&self.presented, sent) {
            return Ok(());
        }
        let target = format!("session:{}", self.session.id);
        deny(
            app,
            &self.audit,
            action,
            &target,
            crate::sign_in::CSRF_MISMATCH,
        )
        .await;
        Err(self.refusal(
            StatusCode::FORBIDDEN,
            section,
            "the form is stale or forged (CSRF token mismatch): reload the page and try again",
        ))
    }

    /// Runs a GraphQL operation as the visitor.
    pub(crate) async fn graphql(
        &self,
        app: &Web,
        query: &str,
        variables: serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        let response = app
            .api
            .execute(Caller::new(self.audit.clone()), request)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "console: the query has no answer");
                Failure::Internal
            })?;
        if let Some(first) = response.errors.first() {
            let code = match first.extensions.as_ref().and_then(|e| e.get("code")) {
                Some(async_graphql::Value::String(code)) => Some(code.as_str()),
                _ => None,
            };
            return Err(match code {
                Some("FORBIDDEN") => Failure::Forbidden(first.message.clone()),
                Some("INTERNAL") => Failure::Internal,
                Some("STALE") => Failure::Stale(first.message.clone()),
                Some(_) => Failure::Refused(first.message.clone()),
                // Our own query failed to parse or validate.
                None if first.path.is_empty() => {
                    tracing::error!(error = %first.message, "console: query rejected");
                    Failure::Internal
                }
                None => Failure::Refused(first.message.clone()),
            });
        }
        response.data.into_json().map_err(|e| {
            tracing::error!(error = %e, "console: answer not JSON");
            Failure::Internal
        })
    }

    /// The page for a failed operation.
    pub(crate) fn failed(&self, section: Section, failure: Failure) -> Response {
        match failure {
            Failure::Forbidden(m) => self.refusal(StatusCode::FORBIDDEN, section, &m),
            Failure::Refused(m) => self.refusal(StatusCode::BAD_REQUEST, section, &m),
            Failure::Stale(m) => self.refusal(StatusCode::CONFLICT, section, &m),
            Failure::Internal => self.refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                section,
                &format!(
                    "internal error; quote request id {} to your operator",
                    self.audit.request_id
                ),
            ),
        }
    }

    /// A page saying why something was refused, with the way back.
    pub(crate) fn refusal(&self, status: StatusCode, section: Section, message: &str) -> Response {
        let body = html! {
            p.notice.error role="alert" { (prose(message)) }
            p { a href=(section.path()) { "Back to " (section.title()) } }
        };
        self.render(status, section, "Refused", body)
    }

    /// A whole page of `section`.
    pub(crate) fn render(
        &self,
        status: StatusCode,
        section: Section,
        title: &str,
        body: Markup,
    ) -> Response {
        html_response(status, layout::frame(Some(self), section, title, body))
    }

    /// A page of `section` at 200.
    pub(crate) fn ok(&self, section: Section, title: &str, body: Markup) -> Response {
        self.render(StatusCode::OK, section, title, body)
    }
}

/// Why a GraphQL operation gave no answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Denied by policy (already recorded): the message.
    Forbidden(String),
    /// The input was refused: the resolver's one-line message.
    Refused(String),
    /// The object changed since the form showed it: the store's one-line message.
    Stale(String),
    /// Our fault; the cause is in the log.
    Internal,
}

/// A refused form: which one (its `id`), and the API's one-line message, shown beside it.
pub(crate) struct Problem<'a> {
    pub form: &'a str,
    pub message: &'a str,
}

/// The error beside `form`, if the refusal was of it; the form's fields point at it with
/// [`invalid`].
pub(crate) fn beside(problem: Option<&Problem<'_>>, form: &str) -> Markup {
    html! {
        @if let Some(p) = problem.filter(|p| p.form == form) {
            p.notice.error.field-error id={ (form) "-error" } role="alert" { (prose(p.message)) }
        }
    }
}

/// `aria-invalid` and `aria-describedby` for a field of `form`, when it was refused.
pub(crate) fn invalid(
    problem: Option<&Problem<'_>>,
    form: &str,
) -> (Option<&'static str>, Option<String>) {
    match problem.filter(|p| p.form == form) {
        Some(_) => (Some("true"), Some(format!("{form}-error"))),
        None => (None, None),
    }
}

/// `303 See Other` to `to`.
pub(crate) fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response()
}

fn unavailable() -> Response {
    html_response(
        StatusCode::SERVICE_UNAVAILABLE,
        layout::frame(
            None,
            Section::Access,
            "Unavailable",
            html! { p { "Try again later." } },
        ),
    )
}

/// The visitor, once the policy lets them open `section`, and the answer to `query` run as
/// them; or what to answer instead (the sign-in page, a 403, the failure).
pub(crate) async fn open(
    app: &Web,
    parts: Parts,
    section: Section,
    query: &str,
    variables: serde_json::Value,
) -> Result<(Visitor, serde_json::Value), Response> {
    let v = allowed(app, parts, section).await?;
    match v.graphql(app, query, variables).await {
        Ok(data) => Ok((v, data)),
        Err(f) => Err(v.failed(section, f)),
    }
}

/// The visitor, once the policy lets them open `section`.
pub(crate) async fn allowed(
    app: &Web,
    parts: Parts,
    section: Section,
) -> Result<Visitor, Response> {
    let v = visitor(app, parts).await?;
    v.require(app, section).await?;
    Ok(v)
}

/// The visitor of a form posted from `section`, once its CSRF token matches (a mismatch is
/// recorded as a denial of `action`).
pub(crate) async fn submitted(
    app: &Web,
    parts: Parts,
    section: Section,
    action: &'static str,
    csrf: &str,
) -> Result<Visitor, Response> {
    let v = visitor(app, parts).await?;
    v.check_form(app, section, action, csrf).await?;
    Ok(v)
}

/// The request's parts every console handler takes.
pub(crate) type Parts = (Anonymous, HeaderMap);

/// What the signed-in person behind a request acts as (their audit context, `web_session`
/// auth), for the server's own routes under `/console` (the audit export); or where to send
/// the browser instead (sign-in, the account page).
pub async fn signed_in(
    app: &Web,
    anonymous: Anonymous,
    headers: HeaderMap,
) -> Result<AuditContext, Response> {
    Ok(visitor(app, (anonymous, headers)).await?.audit)
}

/// The visitor of a request whose extractors are `parts`.
pub(crate) async fn visitor(app: &Web, parts: Parts) -> Result<Visitor, Response> {
    let (Anonymous(ctx), headers) = parts;
    Visitor::of(app, ctx, &headers).await
}

/// A JSON value as text: strings without quotes, null as empty.
pub(crate) fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A time as the API gives it (RFC 3339, UTC) for people: `2026-12-05 23:47:16 UTC`, in a
/// `time` element that keeps it on one line.
pub(crate) fn when(v: &serde_json::Value) -> Markup {
    let t = text(v);
    let shown = match (t.get(..10), t.get(11..19)) {
        (Some(day), Some(time)) if t.ends_with('Z') && t.get(10..11) == Some("T") => {
            format!("{day} {time} UTC")
        }
        _ => t.clone(),
    };
    html! { time datetime=(t) { (shown) } }
}

/// A message as the API and CLI word it, for a page: what they quote in backticks (a name,
/// a command) set as code, with no literal backticks left.
pub(crate) fn prose(message: &str) -> Markup {
    html! {
        @for (i, part) in message.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// A duration as people write it: `90 days`, `36 h`, `4 h 30 min`, `45 min`, `30 s`. Rounded
/// down to its largest unit (and minutes under ten hours), so a clock that runs out in
/// `89 days 2 h 52 min 48 s` reads `89 days`. (`warden_compliance::human` is exact instead,
/// for limits: that clock would read `2138.9 h`.)
pub(crate) fn spoken(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes) = (s / 86_400, s / 3600, (s % 3600) / 60);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..36_000 if minutes > 0 => format!("{hours} h {minutes} min"),
        3600..172_800 => format!("{hours} h"),
        _ => format!("{days} days"),
    }
}

pub(crate) use warden_model::count;

/// `?done=…` after a change: which confirmation to show.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
}

/// The confirmation of a change that just succeeded (fixed texts: nothing from the URL is
/// shown).
pub(crate) fn flash(done: &Done) -> Markup {
    let message = match done.done.as_deref() {
        Some("requested") => "Requested. Approvers see it in their inbox.",
        Some("approved") => "Approved.",
        Some("denied") => "Denied.",
        Some("decided") => "Decided. Revocations are applied now and verified in a moment.",
        Some("revoked") => "Revoked. The token no longer works.",
        Some("added") => "Added. The member's access follows at once.",
        Some("removed") => "Removed. What the group gave them ends now.",
        Some("owner") => "Owner set. They review this group's members in owner reviews.",
        Some("created") => "Made the group. Add its members below.",
        Some("host-removed") => {
            "Removed the host. Its agent can no longer renew; it must join again."
        }
        Some("node-removed") => "Removed the node. It has left every peer list.",
        Some("started") => "Started. Reviewers see their items under Reviews.",
        Some("closed") => "Closed. What was undecided stays so on the record.",
        Some("triaged") => "Decided. The finding's history records who decided and why.",
        _ => return html! {},
    };
    html! { p.notice.ok role="status" { (message) } }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{prose, spoken};

    #[test]
    fn durations_read_as_people_write_them() {
        for (secs, said) in [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (3599, "59 min"),
            (3600, "1 h"),
            (14_400, "4 h"),
            (16_200, "4 h 30 min"),
            (36_000 + 1800, "10 h"),
            (129_600, "36 h"),
            (172_800, "2 days"),
            (90 * 86_400, "90 days"),
            (89 * 86_400 + 10_368, "89 days"),
        ] {
            assert_eq!(spoken(Duration::from_secs(secs)), said, "{secs} s");
        }
    }

    #[test]
    fn quoted_names_are_set_as_code_and_the_rest_escaped() {
        assert_eq!(
            prose("unknown outcome `bogus`: success or <b>").into_string(),
            "unknown outcome <code>bogus</code>: success or &lt;b&gt;"
        );
        assert_eq!(prose("plain").into_string(), "plain");
    }
}
