//! Just-in-time access in GraphQL: `requestAccess`, `approveAccessRequest`,
//! `denyAccessRequest`, `accessRequests` and `grants`. Who may decide a request is the policy
//! engine's `approve` action on the group asked for (with the requester, reason and duration
//! in the context); the requester never may. Every refusal is recorded.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions, Object, SimpleObject};
use warden_model::{Actor, GroupName, UserName};
use warden_policy::Object as PolicyObject;
use warden_store::{AccessRequest, Grant, NewAccessRequest, Outcome, RequestState, Store};

use super::Capability;
use super::authz::authorize;
use super::{Caller, api_error, bad_input};
use crate::policy::{Engine, subject};

/// The longest a grant may last.
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
/// The longest reason accepted.
const MAX_REASON: usize = 500;

/// One approver's decision.
#[derive(Debug, Clone, SimpleObject)]
pub struct AccessDecision {
    /// Who (`user:bob`).
    pub approver: String,
    /// Approved (true) or denied.
    pub approve: bool,
    /// Why.
    pub reason: String,
    /// RFC 3339.
    pub decided_at: String,
}

/// Temporary membership of a group.
#[derive(Debug, Clone, SimpleObject)]
pub struct AccessGrant {
    /// Id.
    pub id: String,
    /// Who holds it.
    pub user: String,
    /// The group.
    pub group: String,
    /// The request it came from.
    pub request_id: Option<String>,
    /// Who granted it.
    pub granted_by: String,
    /// RFC 3339.
    pub starts_at: String,
    /// When it ends by itself, RFC 3339.
    pub expires_at: String,
    /// When it ended, RFC 3339.
    pub ended_at: Option<String>,
    /// Why it ended: `expired`, `user disabled`.
    pub end_reason: Option<String>,
}

impl From<Grant> for AccessGrant {
    fn from(g: Grant) -> Self {
        AccessGrant {
            id: g.id,
            user: g.user.to_string(),
            group: g.group.to_string(),
            request_id: g.request_id,
            granted_by: g.granted_by,
            starts_at: g.starts_at.rfc3339_millis(),
            expires_at: g.expires_at.rfc3339_millis(),
            ended_at: g.ended_at.map(|t| t.rfc3339_millis()),
            end_reason: g.end_reason,
        }
    }
}

/// A leaver, as evidence of time to deprovision.
#[derive(Debug, Clone, SimpleObject)]
pub struct LeaverInfo {
    /// Who.
    pub user: String,
    /// When they were disabled, RFC 3339: tokens, web sessions, grants and certificates ended
    /// in that same transaction.
    pub disabled_at: String,
    /// Who disabled them (`token:okta`, `operator`).
    pub disabled_by: Option<String>,
    /// Their SSH sessions open at that moment.
    pub sessions_open_then: i64,
    /// Of those, how many are still open (should be none).
    pub sessions_still_open: i64,
    /// When the last of them closed, RFC 3339.
    pub last_session_closed_at: Option<String>,
    /// Milliseconds from the disable until nothing was left open (0 with no session); null
    /// while a session still is.
    pub deprovisioned_in_ms: Option<i64>,
}

/// A request for temporary membership.
#[derive(Debug, Clone, SimpleObject)]
pub struct AccessRequestInfo {
    /// Id.
    pub id: String,
    /// Who asked.
    pub requester: String,
    /// The group.
    pub group: String,
    /// Why.
    pub reason: String,
    /// How long the grant lasts, in seconds.
    pub duration_seconds: i64,
    /// Approvals needed.
    pub approvals: i32,
    /// `pending`, `approved` or `denied`.
    pub state: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub decided_at: Option<String>,
    /// The decisions so far.
    pub decisions: Vec<AccessDecision>,
    /// The grant approval made.
    pub grant: Option<AccessGrant>,
}

impl From<AccessRequest> for AccessRequestInfo {
    fn from(r: AccessRequest) -> Self {
        AccessRequestInfo {
            id: r.id,
            requester: r.requester.to_string(),
            group: r.group.to_string(),
            reason: r.reason,
            duration_seconds: r.duration_ms / 1000,
            approvals: i32::try_from(r.approvals).unwrap_or(i32::MAX),
            state: r.state.as_str().to_owned(),
            created_at: r.created_at.rfc3339_millis(),
            decided_at: r.decided_at.map(|t| t.rfc3339_millis()),
            decisions: r
                .decisions
                .into_iter()
                .map(|d| AccessDecision {
                    approver: d.approver,
                    approve: d.approve,
                    reason: d.reason,
                    decided_at: d.decided_at.rfc3339_millis(),
                })
                .collect(),
            grant: r.grant.map(Into::into),
        }
    }
}

fn reason_text(reason: String, required: bool) -> async_graphql::Result<String> {
    let reason = reason.trim().to_owned();
    if required && reason.is_empty() {
        return Err(bad_input("give a reason"));
    }
    if reason.len() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(bad_input(format!(
            "a reason is one line of at most {MAX_REASON} bytes"
        )));
    }
    Ok(reason)
}

/// The person calling, or an error: requests are made by people.
fn person(caller: &Caller) -> async_graphql::Result<UserName> {
    match &caller.audit.actor {
        Actor::User { name, .. } => Ok(name.clone()),
        other => Err(bad_input(format!(
            "only a person can request access; {other} is not one"
        ))),
    }
}

/// Who is deciding, as the policy engine sees them: read once per request to the API.
enum Approver {
    /// The operator on the admin socket, who always may (the store still refuses
    /// self-approval).
    Operator,
    /// A person or service, with their groups now.
    Subject(warden_policy::Subject),
    /// Someone the policy does not know (disabled, anonymous).
    Unknown(String),
}

async fn approver(ctx: &Context<'_>, caller: &Caller) -> async_graphql::Result<Approver> {
    if caller.audit.actor == Actor::Operator {
        return Ok(Approver::Operator);
    }
    let store = ctx.data::<Arc<Store>>()?;
    let found = subject(store, &caller.audit.actor)
        .await
        .map_err(|e| api_error(e, caller))?;
    Ok(match found {
        Some(subject) => Approver::Subject(subject),
        None => Approver::Unknown(format!(
            "{} is not a known, enabled principal",
            caller.audit.actor
        )),
    })
}

/// Whether `approver` may decide `request`, per the `approve` action; `Err` with the reason
/// when not.
fn may_decide(engine: &Engine, approver: &Approver, request: &AccessRequest) -> Result<(), String> {
    let subject = match approver {
        Approver::Operator => return Ok(()),
        Approver::Unknown(why) => return Err(why.clone()),
        Approver::Subject(subject) => subject,
    };
    let context = serde_json::json!({
        "requester": request.requester.as_str(),
        "reason": request.reason,
        "duration_seconds": request.duration_ms / 1000,
    });
    let decision = engine.decide(
        subject,
        "approve",
        &PolicyObject::Group(request.group.to_string()),
        &context,
    );
    if decision.decided.allow {
        Ok(())
    } else {
        Err(decision.reason("approve"))
    }
}

/// Access requests and grants.
#[derive(Debug, Default)]
pub struct AccessQuery;

/// A group a person may ask to join for a while.
#[derive(Debug, Clone, SimpleObject)]
pub struct RequestableGroup {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
}

/// The most groups offered to ask for.
const REQUESTABLE: u32 = 1000;

#[Object]
impl AccessQuery {
    /// The groups the caller (a person) may ask to join, in name order: every group they
    /// are not in, at most 1000. Names and descriptions only: what the request form offers.
    async fn requestable_groups(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<RequestableGroup>> {
        let caller = authorize(ctx, Capability::Viewer, "groups:requestable").await?;
        let me = person(caller)?;
        let store = ctx.data::<Arc<Store>>()?;
        let mine = match store.user(&me).await.map_err(|e| api_error(e, caller))? {
            Some(user) => store
                .user_groups(&user.id, caller.audit.now)
                .await
                .map_err(|e| api_error(e, caller))?,
            None => Vec::new(),
        };
        let page = store
            .groups(&warden_store::PageRequest::first(REQUESTABLE))
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(page
            .items
            .into_iter()
            .filter(|g| !mine.contains(&g.name))
            .map(|g| RequestableGroup {
                name: g.name.to_string(),
                description: g.description,
            })
            .collect())
    }

    /// Requests the caller made or may decide (the operator sees all), newest first;
    /// `state` narrows to `pending`, `approved` or `denied`; `mine` to the caller's own.
    async fn access_requests(
        &self,
        ctx: &Context<'_>,
        state: Option<String>,
        #[graphql(default = false)] mine: bool,
        #[graphql(default = 100)] first: u32,
    ) -> async_graphql::Result<Vec<AccessRequestInfo>> {
        let caller = authorize(ctx, Capability::Viewer, "access_requests").await?;
        let state = match state.as_deref() {
            None => None,
            Some("pending") => Some(RequestState::Pending),
            Some("approved") => Some(RequestState::Approved),
            Some("denied") => Some(RequestState::Denied),
            Some(other) => {
                return Err(bad_input(format!(
                    "unknown state `{other}`: use pending, approved or denied"
                )));
            }
        };
        let store = ctx.data::<Arc<Store>>()?;
        let requester = match (&caller.audit.actor, mine) {
            (_, false) => None,
            (Actor::User { name, .. }, true) => Some(name.clone()),
            (other, true) => {
                return Err(bad_input(format!(
                    "only a person makes requests; {other} is not one"
                )));
            }
        };
        let all = store
            .access_requests(state, requester.as_ref(), first.min(1000))
            .await
            .map_err(|e| api_error(e, caller))?;
        let me = caller.audit.actor.to_string();
        let (engine, approver) = (ctx.data::<Arc<Engine>>()?, approver(ctx, caller).await?);
        let mut out = Vec::new();
        for request in all {
            let mine = me == format!("user:{}", request.requester);
            if mine || may_decide(engine, &approver, &request).is_ok() {
                out.push(request.into());
            }
        }
        Ok(out)
    }

    /// One request, if the caller made it or may decide it.
    async fn access_request(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<Option<AccessRequestInfo>> {
        let caller = authorize(ctx, Capability::Viewer, "access_requests").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let Some(request) = store
            .access_request(&id)
            .await
            .map_err(|e| api_error(e, caller))?
        else {
            return Ok(None);
        };
        let mine = caller.audit.actor.to_string() == format!("user:{}", request.requester);
        let engine = ctx.data::<Arc<Engine>>()?;
        if mine || may_decide(engine, &approver(ctx, caller).await?, &request).is_ok() {
            return Ok(Some(request.into()));
        }
        Ok(None)
    }

    /// People disabled since `since` (RFC 3339, or a span back from now like `30d`; default
    /// 90 days), newest first, with their time to deprovision. Needs `read_audit`.
    async fn leavers(
        &self,
        ctx: &Context<'_>,
        since: Option<String>,
    ) -> async_graphql::Result<Vec<LeaverInfo>> {
        let caller = authorize(ctx, Capability::ReadAudit, "leavers").await?;
        let since = match since.as_deref().map(str::trim) {
            None => caller.audit.now.as_millis() - 90 * 24 * 3600 * 1000,
            Some(text) => match humantime::parse_rfc3339_weak(text) {
                Ok(t) => warden_model::Timestamp::from_system(t).as_millis(),
                Err(_) => {
                    let span = humantime::parse_duration(text).map_err(|_| {
                        bad_input(format!(
                            "invalid `since` `{text}`: use an RFC 3339 time or a span like 30d"
                        ))
                    })?;
                    caller.audit.now.as_millis()
                        - i64::try_from(span.as_millis()).unwrap_or(i64::MAX / 2)
                }
            },
        };
        let store = ctx.data::<Arc<Store>>()?;
        let leavers = store
            .leavers(warden_model::Timestamp::from_millis(since))
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(leavers
            .into_iter()
            .map(|l| LeaverInfo {
                deprovisioned_in_ms: l.deprovisioned_in_ms(),
                user: l.user.to_string(),
                disabled_at: l.disabled_at.rfc3339_millis(),
                disabled_by: l.disabled_by,
                sessions_open_then: i64::try_from(l.sessions_open_then).unwrap_or(i64::MAX),
                sessions_still_open: i64::try_from(l.sessions_still_open).unwrap_or(i64::MAX),
                last_session_closed_at: l.last_session_closed_at.map(|t| t.rfc3339_millis()),
            })
            .collect())
    }

    /// Grants, newest first (`active`: only those in force now). Needs `read_directory`.
    async fn grants(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = true)] active: bool,
    ) -> async_graphql::Result<Vec<AccessGrant>> {
        let caller = authorize(ctx, Capability::ReadDirectory, "grants").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let grants = store
            .grants(active, caller.audit.now)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(grants.into_iter().map(Into::into).collect())
    }
}

/// Requesting and deciding access.
#[derive(Debug, Default)]
pub struct AccessMutation;

#[Object]
impl AccessMutation {
    /// Asks for temporary membership of `group` for `duration` (`2h`; 1s to 30d), with a
    /// reason; `approvals` (1 to 5) approvers must approve.
    async fn request_access(
        &self,
        ctx: &Context<'_>,
        group: String,
        reason: String,
        duration: String,
        #[graphql(default = 1)] approvals: i32,
    ) -> async_graphql::Result<AccessRequestInfo> {
        let caller = authorize(ctx, Capability::Viewer, &format!("group:{group}")).await?;
        let requester = person(caller)?;
        let group = GroupName::new(group).map_err(bad_input)?;
        let reason = reason_text(reason, true)?;
        let duration = humantime::parse_duration(duration.trim()).map_err(|e| {
            bad_input(format!(
                "invalid duration `{duration}`: {e} (like 30m, 2h or 1d)"
            ))
        })?;
        if duration < std::time::Duration::from_secs(1) || duration > MAX_DURATION {
            return Err(bad_input("a grant lasts from 1s to 30d"));
        }
        let approvals = u32::try_from(approvals)
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| bad_input("approvals must be from 1 to 5"))?;
        let store = ctx.data::<Arc<Store>>()?.clone();
        let new = NewAccessRequest {
            requester,
            group,
            reason,
            duration_ms: i64::try_from(duration.as_millis()).unwrap_or(i64::MAX),
            approvals,
        };
        let audit = caller.audit.clone();
        let request =
            crate::request::detached(async move { store.create_access_request(&audit, new).await })
                .await
                .map_err(|e| api_error(e, caller))?;
        Ok(request.into())
    }

    /// Approves a pending request. The grant is made when enough approvers have approved.
    async fn approve_access_request(
        &self,
        ctx: &Context<'_>,
        id: String,
        #[graphql(default)] reason: String,
    ) -> async_graphql::Result<AccessRequestInfo> {
        decide(ctx, id, true, reason).await
    }

    /// Denies a pending request, with a reason; it is closed.
    async fn deny_access_request(
        &self,
        ctx: &Context<'_>,
        id: String,
        reason: String,
    ) -> async_graphql::Result<AccessRequestInfo> {
        decide(ctx, id, false, reason).await
    }
}

async fn decide(
    ctx: &Context<'_>,
    id: String,
    approve: bool,
    reason: String,
) -> async_graphql::Result<AccessRequestInfo> {
    let caller = authorize(ctx, Capability::Viewer, &format!("request:{id}")).await?;
    let reason = reason_text(reason, !approve)?;
    let store = ctx.data::<Arc<Store>>()?.clone();
    let request = store
        .access_request(&id)
        .await
        .map_err(|e| api_error(e, caller))?
        .ok_or_else(|| bad_input(format!("access request `{id}` not found")))?;
    let action = if approve {
        "access.approve"
    } else {
        "access.deny"
    };
    let engine = ctx.data::<Arc<Engine>>()?;
    if let Err(why) = may_decide(engine, &approver(ctx, caller).await?, &request) {
        let target = format!("request:{id}");
        store
            .record(
                &caller.audit,
                action,
                &target,
                serde_json::json!({ "group": request.group }),
                Outcome::Denied,
                Some(&why),
            )
            .await
            .map_err(|e| api_error(e, caller))?;
        return Err(
            async_graphql::Error::new(format!("permission denied: {why}"))
                .extend_with(|_, e| e.set("code", "FORBIDDEN")),
        );
    }
    let audit = caller.audit.clone();
    let decided = crate::request::detached(async move {
        store
            .decide_access_request(&audit, &id, approve, &reason)
            .await
    })
    .await
    .map_err(|e| api_error(e, caller))?;
    Ok(decided.into())
}
