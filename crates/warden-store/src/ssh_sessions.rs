//! SSH sessions through the recording proxy: opened and ended with their audit events.

use serde_json::json;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::Change;
use warden_model::Timestamp;

use crate::audit::Action;
use crate::{AuditContext, Store, StoreError};

/// A session through the proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct SshSession {
    /// Its id.
    pub id: String,
    /// Who (`user:alice`).
    pub principal: String,
    /// The login on the host.
    pub login: String,
    /// The host.
    pub host: String,
    /// Where the user connected from.
    pub source: Option<String>,
    /// When it opened.
    pub started_at: Timestamp,
    /// When it ended (`None`: still open, or its proxy stopped without saying).
    pub ended_at: Option<Timestamp>,
    /// Why it ended when something ended it (a cut-off, an admin).
    pub end_reason: Option<String>,
    /// Its recordings: file, sha256, bytes, kind, command, byte counts.
    pub recordings: serde_json::Value,
    /// The proxy that holds it (its lease id), when it was recorded with one.
    pub proxy: Option<String>,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("ssh_sessions: {e}"))
}

fn from_row(row: &AnyRow) -> Result<SshSession, StoreError> {
    let recordings: String = row.try_get("recordings")?;
    let ended: Option<i64> = row.try_get("ended_at")?;
    Ok(SshSession {
        id: row.try_get("id")?,
        principal: row.try_get("principal")?,
        login: row.try_get("login")?,
        host: row.try_get("host")?,
        source: row.try_get("source")?,
        started_at: Timestamp::from_millis(row.try_get("started_at")?),
        ended_at: ended.map(Timestamp::from_millis),
        end_reason: row.try_get("end_reason")?,
        recordings: serde_json::from_str(&recordings).map_err(corrupt)?,
        proxy: row.try_get("proxy_id")?,
    })
}

const COLUMNS: &str =
    "id, principal, login, host, source, started_at, ended_at, end_reason, recordings, proxy_id";

/// Which sessions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only those still open.
    pub active_only: bool,
    /// Only this person's (or token's) sessions, as the session names them.
    pub principal: Option<String>,
    /// Only those on this host.
    pub host: Option<String>,
    /// Only those started at or after this.
    pub since: Option<Timestamp>,
    /// Only those started before this.
    pub until: Option<Timestamp>,
}

impl Store {
    /// Records an admitted session, audited as `ssh.session.start` with `details`.
    pub async fn start_ssh_session(
        &self,
        ctx: &AuditContext,
        session: &SshSession,
        details: serde_json::Value,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::SshSessionStart.into(),
            target: format!("host:{}", session.host),
            details,
        };
        self.audited(ctx, action, async |conn| {
            sqlx::query(
                "INSERT INTO ssh_sessions (id, principal, login, host, source, started_at, recordings, proxy_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, '[]', $7)",
            )
            .bind(&session.id)
            .bind(&session.principal)
            .bind(&session.login)
            .bind(&session.host)
            .bind(&session.source)
            .bind(ctx.now.as_millis())
            .bind(&session.proxy)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// Records a session's end with its recordings, audited as `ssh.session.end`.
    /// `recording_failures` are what went wrong recording or uploading (also in `reason`),
    /// kept apart so that evidence can count them without reading prose.
    pub async fn end_ssh_session(
        &self,
        ctx: &AuditContext,
        id: &str,
        recordings: serde_json::Value,
        reason: Option<&str>,
        recording_failures: &[String],
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let session = session_by_id(&mut conn, id).await?;
        drop(conn);
        let action = Action {
            name: Change::SshSessionEnd.into(),
            target: format!("host:{}", session.host),
            details: json!({
                "session": id,
                "principal": session.principal,
                "login": session.login,
                "reason": reason,
                "recordings": recordings,
                "recording_failures": recording_failures,
            }),
        };
        let text = recordings.to_string();
        self.audited(ctx, action, async |conn| {
            sqlx::query(
                "UPDATE ssh_sessions SET ended_at = $1, end_reason = $2, recordings = $3 WHERE id = $4",
            )
            .bind(ctx.now.as_millis())
            .bind(reason)
            .bind(&text)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// Renews the lease of proxy `id` (called `name`) until `until`, registering it the first
    /// time. Not audited: it changes no access, and a proxy renews every few seconds.
    pub async fn renew_ssh_proxy_lease(
        &self,
        id: &str,
        name: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ssh_proxies (id, name, started_at, lease_until) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
        )
        .bind(id)
        .bind(name)
        .bind(now.as_millis())
        .bind(until.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends, on the record, every open session whose proxy's lease ran out before `ctx.now`:
    /// the proxy died without ending them. Each is audited as `ssh.session.end` with the
    /// reason, and its end is also requested, so a proxy that was only cut off from the
    /// database disconnects the user when it is back. A session another replica ended first
    /// is skipped. Returns how many it ended.
    pub async fn end_ssh_sessions_of_lost_proxies(
        &self,
        ctx: &AuditContext,
    ) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.principal, s.login, s.host, p.name, p.lease_until FROM ssh_sessions s \
             JOIN ssh_proxies p ON p.id = s.proxy_id \
             WHERE s.ended_at IS NULL AND p.lease_until < $1 ORDER BY s.started_at, s.id",
        )
        .bind(ctx.now.as_millis())
        .fetch_all(&self.pool)
        .await?;
        let mut ended = 0;
        for row in &rows {
            let id: String = row.try_get("id")?;
            let host: String = row.try_get("host")?;
            let proxy: String = row.try_get("name")?;
            let lease = Timestamp::from_millis(row.try_get("lease_until")?);
            let reason = format!(
                "its proxy ({proxy}) stopped: its lease ran out at {}",
                lease.rfc3339_millis()
            );
            let action = Action {
                name: Change::SshSessionEnd.into(),
                target: format!("host:{host}"),
                details: json!({
                    "session": id,
                    "principal": row.try_get::<String, _>("principal")?,
                    "login": row.try_get::<String, _>("login")?,
                    "reason": reason,
                    "recordings": [],
                }),
            };
            let first = self
                .audited_first(ctx, action, async |conn| {
                    let done = sqlx::query(
                        "UPDATE ssh_sessions SET ended_at = $1, end_reason = $2, end_requested = $2 \
                         WHERE id = $3 AND ended_at IS NULL",
                    )
                    .bind(ctx.now.as_millis())
                    .bind(&reason)
                    .bind(&id)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected())
                })
                .await?;
            ended += u64::from(first);
        }
        Ok(ended)
    }

    /// Sessions, newest first: all, or only those not ended.
    pub async fn ssh_sessions(
        &self,
        active_only: bool,
        limit: i64,
    ) -> Result<Vec<SshSession>, StoreError> {
        self.ssh_sessions_matching(
            &SessionFilter {
                active_only,
                ..SessionFilter::default()
            },
            limit,
        )
        .await
    }

    /// The newest `limit` sessions that match `filter`, newest first.
    pub async fn ssh_sessions_matching(
        &self,
        filter: &SessionFilter,
        limit: i64,
    ) -> Result<Vec<SshSession>, StoreError> {
        let mut conds = Vec::new();
        let mut texts = Vec::new();
        let mut times = Vec::new();
        if filter.active_only {
            conds.push("ended_at IS NULL".to_owned());
        }
        // Binds in order: the texts, then the times, then the limit.
        for (column, value) in [("principal", &filter.principal), ("host", &filter.host)] {
            if let Some(v) = value {
                texts.push(v.clone());
                conds.push(format!("{column} = ${}", texts.len()));
            }
        }
        for (op, value) in [(">=", filter.since), ("<", filter.until)] {
            if let Some(t) = value {
                times.push(t.as_millis());
                conds.push(format!("started_at {op} ${}", texts.len() + times.len()));
            }
        }
        let filter_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM ssh_sessions {filter_sql} ORDER BY started_at DESC, id LIMIT ${}",
            texts.len() + times.len() + 1
        );
        let mut q = sqlx::query(&sql);
        for t in texts {
            q = q.bind(t);
        }
        for t in times {
            q = q.bind(t);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }

    /// Sessions that ended at or after `from` and before `to`, oldest end first.
    pub async fn ssh_sessions_ended_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<SshSession>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM ssh_sessions WHERE ended_at >= $1 AND ended_at < $2 ORDER BY ended_at, id"
        ))
        .bind(from.as_millis())
        .bind(to.as_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Asks for an open session to end, audited as `ssh.session.kill`: the proxy holding it
    /// sees the request at its next check ([`Store::ssh_session_end_requested`]). A session
    /// unknown or already ended is an error, and nothing is recorded but the refusal.
    pub async fn request_ssh_session_end(
        &self,
        ctx: &AuditContext,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::SshSessionKill.into(),
            target: format!("ssh-session:{id}"),
            details: json!({ "reason": reason }),
        };
        self.audited(ctx, action, async |conn| {
            let session = session_by_id(conn, id).await?;
            if session.ended_at.is_some() {
                return Err(StoreError::Conflict(format!(
                    "ssh session `{id}` has already ended"
                )));
            }
            sqlx::query("UPDATE ssh_sessions SET end_requested = $1 WHERE id = $2")
                .bind(reason)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Why someone asked for this session to end, if they did.
    pub async fn ssh_session_end_requested(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT end_requested FROM ssh_sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get("end_requested")?,
            None => None,
        })
    }

    /// One session.
    pub async fn ssh_session(&self, id: &str) -> Result<Option<SshSession>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        match session_by_id(&mut conn, id).await {
            Ok(session) => Ok(Some(session)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The session `id`; `NotFound` when there is none.
async fn session_by_id(conn: &mut AnyConnection, id: &str) -> Result<SshSession, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM ssh_sessions WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "ssh session",
            name: id.to_owned(),
        })
}
