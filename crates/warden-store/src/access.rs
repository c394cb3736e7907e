//! Just-in-time access: a person asks for a group for a while, with a reason; approvers
//! decide (never the requester; the edge asks the policy engine who may); enough approvals
//! make a grant, which counts as membership until it expires or is ended. Requests and
//! decisions are kept forever.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::{GroupName, Timestamp, UserName};

use crate::audit::Action;
use crate::audit::Name;
use crate::users::{new_id, user_id};
use crate::{AuditContext, Store, StoreError};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for decisions.
    Pending,
    /// Approved: a grant was made.
    Approved,
    /// Denied by an approver.
    Denied,
}

impl RequestState {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Result<RequestState, StoreError> {
        match s {
            "pending" => Ok(RequestState::Pending),
            "approved" => Ok(RequestState::Approved),
            "denied" => Ok(RequestState::Denied),
            other => Err(StoreError::Corrupt(format!("request state `{other}`"))),
        }
    }
}

/// A request for temporary membership of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// Id.
    pub id: String,
    /// Who asked.
    pub requester: UserName,
    /// The group asked for.
    pub group: GroupName,
    /// Why.
    pub reason: String,
    /// For how long, in milliseconds, from approval.
    pub duration_ms: i64,
    /// How many approvals it needs.
    pub approvals: u32,
    /// Where it stands.
    pub state: RequestState,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was approved or denied.
    pub decided_at: Option<Timestamp>,
    /// The decisions so far, oldest first.
    pub decisions: Vec<Decision>,
    /// The grant its approval made.
    pub grant: Option<Grant>,
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Who decided (an actor label: `user:bob`).
    pub approver: String,
    /// Approve (`true`) or deny.
    pub approve: bool,
    /// Why.
    pub reason: String,
    /// When.
    pub decided_at: Timestamp,
}

/// Temporary membership of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Id.
    pub id: String,
    /// Who holds it.
    pub user: UserName,
    /// The group.
    pub group: GroupName,
    /// The request it came from.
    pub request_id: Option<String>,
    /// Who granted it (the last approver).
    pub granted_by: String,
    /// When it began.
    pub starts_at: Timestamp,
    /// When it ends by itself.
    pub expires_at: Timestamp,
    /// When it ended, if it has.
    pub ended_at: Option<Timestamp>,
    /// Why it ended: `expired`, `user disabled`.
    pub end_reason: Option<String>,
}

/// A request to make.
#[derive(Debug, Clone)]
pub struct NewAccessRequest {
    /// Who asks.
    pub requester: UserName,
    /// For which group.
    pub group: GroupName,
    /// Why.
    pub reason: String,
    /// For how long, in milliseconds.
    pub duration_ms: i64,
    /// How many approvals it needs (at least 1).
    pub approvals: u32,
}

const REQUEST_COLUMNS: &str =
    "id, requester, group_name, reason, duration_ms, approvals, state, created_at, decided_at";
const GRANT_COLUMNS: &str = "gr.id, u.name AS user_name, g.name AS group_name, gr.request_id, \
     gr.granted_by, gr.starts_at, gr.expires_at, gr.ended_at, gr.end_reason";
const GRANT_TABLES: &str =
    "grants gr JOIN users u ON u.id = gr.user_id JOIN groups g ON g.id = gr.group_id";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn request_from_row(row: &AnyRow) -> Result<AccessRequest, StoreError> {
    Ok(AccessRequest {
        id: row.try_get("id")?,
        requester: UserName::new(row.try_get::<String, _>("requester")?).map_err(corrupt)?,
        group: GroupName::new(row.try_get::<String, _>("group_name")?).map_err(corrupt)?,
        reason: row.try_get("reason")?,
        duration_ms: row.try_get("duration_ms")?,
        approvals: u32::try_from(row.try_get::<i64, _>("approvals")?).map_err(corrupt)?,
        state: RequestState::parse(&row.try_get::<String, _>("state")?)?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        decided_at: row
            .try_get::<Option<i64>, _>("decided_at")?
            .map(Timestamp::from_millis),
        decisions: Vec::new(),
        grant: None,
    })
}

fn grant_from_row(row: &AnyRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: row.try_get("id")?,
        user: UserName::new(row.try_get::<String, _>("user_name")?).map_err(corrupt)?,
        group: GroupName::new(row.try_get::<String, _>("group_name")?).map_err(corrupt)?,
        request_id: row.try_get("request_id")?,
        granted_by: row.try_get("granted_by")?,
        starts_at: Timestamp::from_millis(row.try_get("starts_at")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        ended_at: row
            .try_get::<Option<i64>, _>("ended_at")?
            .map(Timestamp::from_millis),
        end_reason: row.try_get("end_reason")?,
    })
}

async fn fetch_request(conn: &mut AnyConnection, id: &str) -> Result<AccessRequest, StoreError> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM access_requests WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound {
            kind: "access request",
            name: id.chars().take(80).collect(),
        });
    };
    let mut request = request_from_row(&row)?;
    let rows = sqlx::query(
        "SELECT approver, decision, reason, decided_at FROM access_decisions \
         WHERE request_id = $1 ORDER BY decided_at, approver",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        request.decisions.push(Decision {
            approver: row.try_get("approver")?,
            approve: row.try_get::<String, _>("decision")? == "approve",
            reason: row.try_get("reason")?,
            decided_at: Timestamp::from_millis(row.try_get("decided_at")?),
        });
    }
    let sql = format!("SELECT {GRANT_COLUMNS} FROM {GRANT_TABLES} WHERE gr.request_id = $1");
    if let Some(row) = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    {
        request.grant = Some(grant_from_row(&row)?);
    }
    Ok(request)
}

/// Whether the user is in the group now, as a member or through a live grant.
async fn in_group(
    conn: &mut AnyConnection,
    user_id: &str,
    group_id: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT 1 FROM group_members WHERE user_id = $1 AND group_id = $2 \
         UNION ALL SELECT 1 FROM grants WHERE user_id = $1 AND group_id = $2 \
         AND ended_at IS NULL AND expires_at > $3",
    )
    .bind(user_id)
    .bind(group_id)
    .bind(now.as_millis())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.is_some())
}

async fn group_id(conn: &mut AnyConnection, name: &GroupName) -> Result<String, StoreError> {
    sqlx::query("SELECT id FROM groups WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get::<String, _>("id"))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "group",
            name: name.to_string(),
        })
}

impl Store {
    /// Records a request for temporary membership. Refused when the requester is disabled,
    /// already in the group, or already has a pending request for it.
    pub async fn create_access_request(
        &self,
        ctx: &AuditContext,
        new: NewAccessRequest,
    ) -> Result<AccessRequest, StoreError> {
        let id = new_id();
        let action = Action {
            name: Change::AccessRequest.into(),
            target: format!("group:{}", new.group),
            details: json!({
                "request": id,
                "requester": new.requester,
                "reason": new.reason,
                "duration_ms": new.duration_ms,
                "approvals": new.approvals,
            }),
        };
        self.audited(ctx, action, async |conn| {
            let uid = user_id(conn, &new.requester).await?;
            let disabled = sqlx::query("SELECT 1 FROM users WHERE id = $1 AND disabled_at IS NOT NULL")
                .bind(&uid)
                .fetch_optional(&mut *conn)
                .await?;
            if disabled.is_some() {
                return Err(StoreError::Conflict(format!("user `{}` is disabled", new.requester)));
            }
            let gid = group_id(conn, &new.group).await?;
            if in_group(conn, &uid, &gid, ctx.now).await? {
                return Err(StoreError::Conflict(format!(
                    "`{}` is already in group `{}`",
                    new.requester, new.group
                )));
            }
            let pending = sqlx::query(
                "SELECT id FROM access_requests WHERE requester = $1 AND group_name = $2 AND state = 'pending'",
            )
            .bind(new.requester.as_str())
            .bind(new.group.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(row) = pending {
                let other: String = row.try_get("id")?;
                return Err(StoreError::Conflict(format!(
                    "request `{other}` for group `{}` is already pending",
                    new.group
                )));
            }
            sqlx::query(
                "INSERT INTO access_requests (id, requester, group_name, reason, duration_ms, approvals, state, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7)",
            )
            .bind(&id)
            .bind(new.requester.as_str())
            .bind(new.group.as_str())
            .bind(&new.reason)
            .bind(new.duration_ms)
            .bind(i64::from(new.approvals))
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await?;
            fetch_request(conn, &id).await
        })
        .await
    }

    /// Records `approver`'s decision on a pending request (the edge has asked the policy
    /// engine whether they may decide it). A denial closes it; the approval that reaches the
    /// number needed closes it and makes the grant, from now for the requested duration.
    pub async fn decide_access_request(
        &self,
        ctx: &AuditContext,
        id: &str,
        approve: bool,
        reason: &str,
    ) -> Result<AccessRequest, StoreError> {
        let approver = ctx.actor.to_string();
        let action = Action {
            name: Name::Change(if approve {
                Change::AccessApprove
            } else {
                Change::AccessDeny
            }),
            target: format!("request:{}", id.chars().take(80).collect::<String>()),
            details: json!({ "reason": reason }),
        };
        self.audited_detailed(ctx, action, async |conn| {
            let request = fetch_request(conn, id).await?;
            if request.state != RequestState::Pending {
                return Err(StoreError::Conflict(format!(
                    "request `{id}` is already {}",
                    request.state.as_str()
                )));
            }
            if approver == format!("user:{}", request.requester) {
                return Err(StoreError::Conflict(format!(
                    "you cannot decide your own request `{id}`"
                )));
            }
            if request.decisions.iter().any(|d| d.approver == approver) {
                return Err(StoreError::Conflict(format!(
                    "you have already decided request `{id}`"
                )));
            }
            sqlx::query(
                "INSERT INTO access_decisions (request_id, approver, decision, reason, decided_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(&approver)
            .bind(if approve { "approve" } else { "deny" })
            .bind(reason)
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await?;
            let approvals = request.decisions.iter().filter(|d| d.approve).count() + 1;
            let closes = !approve || approvals >= usize::try_from(request.approvals).unwrap_or(1);
            let mut details = json!({
                "requester": request.requester,
                "group": request.group,
                "approvals": approvals,
                "needed": request.approvals,
            });
            if closes {
                let state = if approve { "approved" } else { "denied" };
                sqlx::query("UPDATE access_requests SET state = $1, decided_at = $2 WHERE id = $3")
                    .bind(state)
                    .bind(ctx.now.as_millis())
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            if closes && approve {
                let uid = user_id(conn, &request.requester).await?;
                let gid = group_id(conn, &request.group).await?;
                let grant = new_id();
                let expires_at = Timestamp::from_millis(ctx.now.as_millis().saturating_add(request.duration_ms));
                sqlx::query(
                    "INSERT INTO grants (id, user_id, group_id, request_id, granted_by, starts_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&grant)
                .bind(&uid)
                .bind(&gid)
                .bind(id)
                .bind(&approver)
                .bind(ctx.now.as_millis())
                .bind(expires_at.as_millis())
                .execute(&mut *conn)
                .await?;
                if let Some(map) = details.as_object_mut() {
                    map.insert("grant".into(), grant.into());
                    map.insert("expires_at".into(), expires_at.rfc3339_millis().into());
                }
            }
            Ok((fetch_request(conn, id).await?, details))
        })
        .await
    }

    /// One request with its decisions and grant.
    pub async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        match fetch_request(&mut conn, id).await {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Requests, newest first, optionally only in `state` or by `requester`, at most `limit`.
    pub async fn access_requests(
        &self,
        state: Option<RequestState>,
        requester: Option<&UserName>,
        limit: u32,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let sql = format!(
            "SELECT id FROM access_requests WHERE ($1 = '' OR state = $1) AND ($2 = '' OR requester = $2) \
             ORDER BY created_at DESC, id DESC LIMIT {limit}"
        );
        let rows = sqlx::query(&sql)
            .bind(state.map(RequestState::as_str).unwrap_or_default())
            .bind(requester.map(UserName::as_str).unwrap_or_default())
            .fetch_all(&self.pool)
            .await?;
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(fetch_request(&mut conn, &row.try_get::<String, _>("id")?).await?);
        }
        Ok(out)
    }

    /// Grants, newest first: only those live at `now` when `live`.
    pub async fn grants(&self, live: bool, now: Timestamp) -> Result<Vec<Grant>, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM {GRANT_TABLES} \
             WHERE $1 = 0 OR (gr.ended_at IS NULL AND gr.expires_at > $2) ORDER BY gr.starts_at DESC LIMIT 1000"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(live))
            .bind(now.as_millis())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(grant_from_row).collect()
    }

    /// Ends the grants that expired by `now`, each in its own audited change (`grant.expire`);
    /// the change feed then tells every proxy to recheck the sessions they allowed. Returns
    /// how many ended.
    pub async fn end_expired_grants(&self, ctx: &AuditContext) -> Result<usize, StoreError> {
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM {GRANT_TABLES} \
             WHERE gr.ended_at IS NULL AND gr.expires_at <= $1 ORDER BY gr.expires_at LIMIT 1000"
        );
        let rows = sqlx::query(&sql)
            .bind(ctx.now.as_millis())
            .fetch_all(&self.pool)
            .await?;
        let mut ended = 0;
        for row in &rows {
            let grant = grant_from_row(row)?;
            let action = Action {
                name: Change::GrantExpire.into(),
                target: format!("user:{}", grant.user),
                details: json!({
                    "grant": grant.id,
                    "group": grant.group,
                    "request": grant.request_id,
                    "expires_at": grant.expires_at.rfc3339_millis(),
                }),
            };
            let first = self
                .audited_first(ctx, action, async |conn| {
                    let done = sqlx::query(
                        "UPDATE grants SET ended_at = $1, end_reason = 'expired' WHERE id = $2 AND ended_at IS NULL",
                    )
                    .bind(ctx.now.as_millis())
                    .bind(&grant.id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected())
                })
                .await?;
            ended += usize::from(first);
        }
        Ok(ended)
    }
}

/// Ends a disabled person's live grants, in the disabling transaction; how many.
pub(crate) async fn end_grants(
    conn: &mut AnyConnection,
    user_id: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE grants SET ended_at = $1, end_reason = 'user disabled' WHERE user_id = $2 AND ended_at IS NULL",
    )
    .bind(now.as_millis())
    .bind(user_id)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// One leaver, as evidence: when they were disabled, and when the last of their SSH sessions
/// open at that moment closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaver {
    /// Who.
    pub user: UserName,
    /// When they were disabled (the request's arrival): tokens, web sessions, grants and
    /// certificates ended in that same transaction.
    pub disabled_at: Timestamp,
    /// Who disabled them (`token:okta`, `operator`), from the audit log.
    pub disabled_by: Option<String>,
    /// Their SSH sessions open when they were disabled.
    pub sessions_open_then: u64,
    /// Of those, how many are still open (should be none).
    pub sessions_still_open: u64,
    /// When the last of those sessions closed.
    pub last_session_closed_at: Option<Timestamp>,
}

impl Leaver {
    /// Milliseconds from the disable to nothing left open: 0 when no session was open;
    /// `None` while one still is.
    pub fn deprovisioned_in_ms(&self) -> Option<i64> {
        if self.sessions_still_open > 0 {
            return None;
        }
        Some(
            self.last_session_closed_at
                .map_or(0, |t| (t.as_millis() - self.disabled_at.as_millis()).max(0)),
        )
    }
}

impl Store {
    /// People disabled at or after `since`, most recent first, with their time to
    /// deprovision (from the session records the proxies wrote).
    pub async fn leavers(&self, since: Timestamp) -> Result<Vec<Leaver>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name, u.disabled_at, \
             (SELECT COUNT(*) FROM ssh_sessions s WHERE s.principal = 'user:' || u.name \
               AND s.started_at <= u.disabled_at AND (s.ended_at IS NULL OR s.ended_at >= u.disabled_at)) AS open_then, \
             (SELECT COUNT(*) FROM ssh_sessions s WHERE s.principal = 'user:' || u.name \
               AND s.started_at <= u.disabled_at AND s.ended_at IS NULL) AS still_open, \
             (SELECT MAX(s.ended_at) FROM ssh_sessions s WHERE s.principal = 'user:' || u.name \
               AND s.started_at <= u.disabled_at AND s.ended_at >= u.disabled_at) AS last_closed, \
             (SELECT e.actor FROM audit_log e WHERE e.target = 'user:' || u.name \
               AND e.action IN ('user.disable', 'user.delete') AND e.outcome = 'success' \
               AND e.time = u.disabled_at ORDER BY e.seq DESC LIMIT 1) AS disabled_by \
             FROM users u WHERE u.disabled_at IS NOT NULL AND u.disabled_at >= $1 \
             ORDER BY u.disabled_at DESC, u.name LIMIT 10000",
        )
        .bind(since.as_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Leaver {
                    user: UserName::new(row.try_get::<String, _>("name")?).map_err(corrupt)?,
                    disabled_at: Timestamp::from_millis(row.try_get("disabled_at")?),
                    disabled_by: row.try_get("disabled_by")?,
                    sessions_open_then: u64::try_from(row.try_get::<i64, _>("open_then")?)
                        .unwrap_or_default(),
                    sessions_still_open: u64::try_from(row.try_get::<i64, _>("still_open")?)
                        .unwrap_or_default(),
                    last_session_closed_at: row
                        .try_get::<Option<i64>, _>("last_closed")?
                        .map(Timestamp::from_millis),
                })
            })
            .collect()
    }
}
