//! The audit trail's write path: every change, failed change and denial becomes a row in
//! `audit_events`, in the transaction that makes the change.

use serde_json::Value;
use sqlx::{AnyConnection, Row};
use warden_model::{Actor, Timestamp};

use crate::{Store, StoreError};

/// Who asks for a change, when, and through which request. Built at the edge, per request.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// Who is acting.
    pub actor: Actor,
    /// The request id that log lines of the same request carry.
    pub request_id: String,
    /// The remote address, when there is one (not for the admin socket).
    pub source: Option<String>,
    /// The time the request arrived.
    pub now: Timestamp,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The change was made.
    Success,
    /// The change was refused for a reason of state (already exists, not found).
    Failure,
    /// The actor was not allowed to ask.
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            "denied" => Ok(Outcome::Denied),
            other => Err(StoreError::Corrupt(format!("audit outcome `{other}`"))),
        }
    }
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// Position in the log, from 1.
    pub seq: i64,
    /// When it happened.
    pub time: Timestamp,
    /// Who acted, as a short label (`user:alice`).
    pub actor: String,
    /// How they authenticated (`api_token`, `unix_socket`, `none`).
    pub auth: String,
    /// What they did (`user.create`).
    pub action: String,
    /// What they did it to (`user:alice`).
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or was denied.
    pub reason: Option<String>,
    /// The request that caused it.
    pub request_id: String,
    /// The remote address.
    pub source: Option<String>,
    /// Action-specific fields, canonical JSON.
    pub details: Value,
}

/// What a mutation is, for its audit event.
#[derive(Debug, Clone)]
pub(crate) struct Action {
    pub name: &'static str,
    pub target: String,
    pub details: Value,
}

impl Store {
    /// The one path for every mutation: runs `change` in a transaction, writes its audit event
    /// in the same transaction, and commits both or neither. A change refused for the caller's
    /// mistake is rolled back and recorded as a failure in a transaction of its own.
    pub(crate) async fn audited<T>(
        &self,
        ctx: &AuditContext,
        action: Action,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let mut tx = self.pool.begin().await?;
        match change(&mut tx).await {
            Ok(value) => {
                insert_event(&mut tx, ctx, &action, Outcome::Success, None).await?;
                tx.commit().await?;
                Ok(value)
            }
            Err(err) => {
                tx.rollback().await?;
                if err.is_user_error() {
                    let mut tx = self.pool.begin().await?;
                    let reason = err.to_string();
                    insert_event(&mut tx, ctx, &action, Outcome::Failure, Some(&reason)).await?;
                    tx.commit().await?;
                }
                Err(err)
            }
        }
    }

    /// Records that `ctx.actor` was refused `action` on `target`.
    pub async fn record_denial(
        &self,
        ctx: &AuditContext,
        action: &'static str,
        target: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let _writer = match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let action = Action {
            name: action,
            target: target.to_owned(),
            details: Value::Null,
        };
        let mut tx = self.pool.begin().await?;
        insert_event(&mut tx, ctx, &action, Outcome::Denied, Some(reason)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The most recent `limit` events, oldest first.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, time, actor, auth, action, target, outcome, reason, request_id, source, details \
             FROM audit_events ORDER BY seq DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .into_iter()
            .map(|row| {
                let details: String = row.try_get("details")?;
                let outcome: String = row.try_get("outcome")?;
                Ok(AuditEvent {
                    seq: row.try_get("seq")?,
                    time: Timestamp::from_millis(row.try_get("time")?),
                    actor: row.try_get("actor")?,
                    auth: row.try_get("auth")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    outcome: Outcome::parse(&outcome)?,
                    reason: row.try_get("reason")?,
                    request_id: row.try_get("request_id")?,
                    source: row.try_get("source")?,
                    details: serde_json::from_str(&details)
                        .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        events.reverse();
        Ok(events)
    }
}

async fn insert_event(
    conn: &mut AnyConnection,
    ctx: &AuditContext,
    action: &Action,
    outcome: Outcome,
    reason: Option<&str>,
) -> Result<(), StoreError> {
    let actor_json = serde_json::to_string(&ctx.actor)
        .map_err(|e| StoreError::Corrupt(format!("actor: {e}")))?;
    // serde_json's Map is a BTreeMap here, so keys come out sorted: canonical enough to hash.
    let details = serde_json::to_string(&action.details)
        .map_err(|e| StoreError::Corrupt(format!("details: {e}")))?;
    let auth = serde_json::to_value(ctx.actor.auth_method())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO audit_events \
         (time, actor, actor_json, auth, action, target, outcome, reason, request_id, source, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(ctx.now.as_millis())
    .bind(ctx.actor.to_string())
    .bind(actor_json)
    .bind(auth)
    .bind(action.name)
    .bind(&action.target)
    .bind(outcome.as_str())
    .bind(reason)
    .bind(&ctx.request_id)
    .bind(ctx.source.as_deref())
    .bind(details)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
