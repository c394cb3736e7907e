//! Break-glass credentials and their uses: what `warden admin break-glass create` made (the
//! throwaway CA's public key, never the private key), what hosts' agents reported when Warden
//! came back (each use, with the session recorded on the host), and each use's after-action
//! review, open until someone closes it with a summary.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::{Change, Timestamp};

use crate::audit::Action;
use crate::{AuditContext, Store, StoreError};

/// A break-glass credential as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    /// Its id (`break-glass:ID` in its certificate's key id).
    pub id: String,
    /// The CA public key hosts trust while cut off.
    pub ca_public: String,
    /// The certified key's SHA-256 fingerprint.
    pub key_sha256: String,
    /// Why it was made.
    pub reason: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When its certificate stops working.
    pub expires_at: Timestamp,
    /// Shares made.
    pub shares: u8,
    /// Shares that open it.
    pub threshold: u8,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A credential to record.
#[derive(Debug, Clone)]
pub struct NewBreakGlass {
    /// Its id.
    pub id: String,
    /// The CA public key.
    pub ca_public: String,
    /// The certified key's fingerprint.
    pub key_sha256: String,
    /// Why.
    pub reason: String,
    /// Until when.
    pub expires_at: Timestamp,
    /// Shares made.
    pub shares: u8,
    /// Shares that open it.
    pub threshold: u8,
}

/// One use of a credential, as a host's agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassUse {
    /// The agent's id for it.
    pub id: String,
    /// The credential used.
    pub credential: String,
    /// The host.
    pub host: String,
    /// The login.
    pub login: String,
    /// When the session started, by the host's clock.
    pub started_at: Timestamp,
    /// When it ended, if it did.
    pub ended_at: Option<Timestamp>,
    /// The recording's file name among the recordings.
    pub recording: Option<String>,
    /// Its SHA-256.
    pub recording_sha256: Option<String>,
    /// When the agent reported it.
    pub reported_at: Timestamp,
    /// When its after-action review was closed.
    pub closed_at: Option<Timestamp>,
    /// By whom.
    pub closed_by: Option<String>,
    /// What the review found.
    pub summary: Option<String>,
}

fn ts(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(Timestamp::from_millis))
}

fn small(row: &AnyRow, column: &str) -> Result<u8, StoreError> {
    u8::try_from(row.try_get::<i64, _>(column)?)
        .map_err(|_| StoreError::Corrupt(format!("break_glass.{column}")))
}

fn credential_from_row(row: &AnyRow) -> Result<BreakGlass, StoreError> {
    Ok(BreakGlass {
        id: row.try_get("id")?,
        ca_public: row.try_get("ca_public")?,
        key_sha256: row.try_get("key_sha256")?,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        shares: small(row, "shares")?,
        threshold: small(row, "threshold")?,
        revoked_at: ts(row, "revoked_at")?,
    })
}

fn use_from_row(row: &AnyRow) -> Result<BreakGlassUse, StoreError> {
    Ok(BreakGlassUse {
        id: row.try_get("id")?,
        credential: row.try_get("credential")?,
        host: row.try_get("host")?,
        login: row.try_get("login")?,
        started_at: Timestamp::from_millis(row.try_get("started_at")?),
        ended_at: ts(row, "ended_at")?,
        recording: row.try_get("recording")?,
        recording_sha256: row.try_get("recording_sha256")?,
        reported_at: Timestamp::from_millis(row.try_get("reported_at")?),
        closed_at: ts(row, "closed_at")?,
        closed_by: row.try_get("closed_by")?,
        summary: row.try_get("summary")?,
    })
}

const USE_COLUMNS: &str = "id, credential, host, login, started_at, ended_at, recording, \
     recording_sha256, reported_at, closed_at, closed_by, summary";

/// A use to record.
#[derive(Debug, Clone)]
pub struct NewBreakGlassUse {
    /// The agent's id for it (a UUID it chose).
    pub id: String,
    /// The credential (from the certificate's key id).
    pub credential: String,
    /// The reporting host.
    pub host: String,
    /// The login.
    pub login: String,
    /// Started, by the host's clock.
    pub started_at: Timestamp,
    /// Ended.
    pub ended_at: Option<Timestamp>,
    /// The recording's file name, once stored.
    pub recording: Option<String>,
    /// Its SHA-256.
    pub recording_sha256: Option<String>,
}

impl Store {
    /// Records a new credential (`breakglass.create`).
    pub async fn create_break_glass(
        &self,
        ctx: &AuditContext,
        new: NewBreakGlass,
    ) -> Result<BreakGlass, StoreError> {
        let action = Action {
            name: Change::BreakGlassCreate.into(),
            target: format!("break-glass:{}", new.id),
            details: json!({
                "key_sha256": new.key_sha256,
                "reason": new.reason,
                "expires_at": new.expires_at.rfc3339_millis(),
                "shares": new.shares,
                "threshold": new.threshold,
            }),
        };
        self.audited(ctx, action, async |conn| {
            sqlx::query(
                "INSERT INTO break_glass (id, ca_public, key_sha256, reason, created_by, created_at, \
                 expires_at, shares, threshold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&new.id)
            .bind(&new.ca_public)
            .bind(&new.key_sha256)
            .bind(&new.reason)
            .bind(ctx.actor.to_string())
            .bind(ctx.now.as_millis())
            .bind(new.expires_at.as_millis())
            .bind(i64::from(new.shares))
            .bind(i64::from(new.threshold))
            .execute(&mut *conn)
            .await?;
            Ok(BreakGlass {
                id: new.id.clone(),
                ca_public: new.ca_public.clone(),
                key_sha256: new.key_sha256.clone(),
                reason: new.reason.clone(),
                created_by: ctx.actor.to_string(),
                created_at: ctx.now,
                expires_at: new.expires_at,
                shares: new.shares,
                threshold: new.threshold,
                revoked_at: None,
            })
        })
        .await
    }

    /// Revokes a credential (`breakglass.revoke`): hosts stop trusting it at their next
    /// contact.
    pub async fn revoke_break_glass(
        &self,
        ctx: &AuditContext,
        id: &str,
    ) -> Result<BreakGlass, StoreError> {
        let action = Action {
            name: Change::BreakGlassRevoke.into(),
            target: format!("break-glass:{}", id.chars().take(80).collect::<String>()),
            details: serde_json::Value::Null,
        };
        self.audited(ctx, action, async |conn| {
            let row = sqlx::query("SELECT * FROM break_glass WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    kind: "break-glass credential",
                    name: id.chars().take(80).collect(),
                })?;
            let found = credential_from_row(&row)?;
            if found.revoked_at.is_some() {
                return Err(StoreError::Conflict(format!(
                    "break-glass credential `{id}` is already revoked"
                )));
            }
            sqlx::query("UPDATE break_glass SET revoked_at = $1 WHERE id = $2")
                .bind(ctx.now.as_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok(BreakGlass {
                revoked_at: Some(ctx.now),
                ..found
            })
        })
        .await
    }

    /// Every credential, newest first.
    pub async fn break_glass_credentials(&self) -> Result<Vec<BreakGlass>, StoreError> {
        sqlx::query("SELECT * FROM break_glass ORDER BY created_at DESC, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(credential_from_row)
            .collect()
    }

    /// The CA keys of credentials neither revoked nor expired at `now`: what hosts keep, to
    /// trust while cut off.
    pub async fn live_break_glass_keys(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT ca_public FROM break_glass WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY id",
        )
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("ca_public")?))
            .collect()
    }

    /// Records a use a host's agent reported (`breakglass.use`, which webhooks can carry),
    /// opening its after-action review. A use already reported is not recorded again: `false`.
    pub async fn record_break_glass_use(
        &self,
        ctx: &AuditContext,
        new: NewBreakGlassUse,
    ) -> Result<bool, StoreError> {
        let action = Action {
            name: Change::BreakGlassUse.into(),
            target: format!("break-glass:{}", new.credential),
            details: json!({
                "use": new.id,
                "host": new.host,
                "login": new.login,
                "started_at": new.started_at.rfc3339_millis(),
                "ended_at": new.ended_at.map(Timestamp::rfc3339_millis),
                "recording": new.recording,
                "recording_sha256": new.recording_sha256,
            }),
        };
        let made = self
            .audited(ctx, action, async |conn| {
                let known = sqlx::query("SELECT 1 AS one FROM break_glass WHERE id = $1")
                    .bind(&new.credential)
                    .fetch_optional(&mut *conn)
                    .await?;
                if known.is_none() {
                    return Err(StoreError::NotFound {
                        kind: "break-glass credential",
                        name: new.credential.chars().take(80).collect(),
                    });
                }
                let seen = sqlx::query("SELECT 1 AS one FROM break_glass_uses WHERE id = $1")
                    .bind(&new.id)
                    .fetch_optional(&mut *conn)
                    .await?;
                if seen.is_some() {
                    return Err(StoreError::Raced);
                }
                sqlx::query(&format!(
                    "INSERT INTO break_glass_uses ({USE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL)"
                ))
                .bind(&new.id)
                .bind(&new.credential)
                .bind(&new.host)
                .bind(&new.login)
                .bind(new.started_at.as_millis())
                .bind(new.ended_at.map(Timestamp::as_millis))
                .bind(new.recording.as_deref())
                .bind(new.recording_sha256.as_deref())
                .bind(ctx.now.as_millis())
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
            .await;
        match made {
            Ok(()) => Ok(true),
            Err(StoreError::Raced) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every reported use, newest first; only those with an open review when `open`.
    pub async fn break_glass_uses(&self, open: bool) -> Result<Vec<BreakGlassUse>, StoreError> {
        let filter = if open { "WHERE closed_at IS NULL " } else { "" };
        sqlx::query(&format!(
            "SELECT {USE_COLUMNS} FROM break_glass_uses {filter}ORDER BY started_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(use_from_row)
        .collect()
    }

    /// One reported use.
    pub async fn break_glass_use(&self, id: &str) -> Result<Option<BreakGlassUse>, StoreError> {
        sqlx::query(&format!(
            "SELECT {USE_COLUMNS} FROM break_glass_uses WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(use_from_row)
        .transpose()
    }

    /// Closes a use's after-action review with what it found (`breakglass.review.close`).
    pub async fn close_break_glass_review(
        &self,
        ctx: &AuditContext,
        id: &str,
        summary: &str,
    ) -> Result<BreakGlassUse, StoreError> {
        let action = Action {
            name: Change::BreakGlassReviewClose.into(),
            target: format!(
                "break-glass-use:{}",
                id.chars().take(80).collect::<String>()
            ),
            details: json!({ "summary": summary }),
        };
        self.audited(ctx, action, async |conn| {
            if summary.trim().is_empty() {
                return Err(StoreError::Conflict(
                    "an after-action review needs a summary of what was done and why".to_owned(),
                ));
            }
            let row = sqlx::query(&format!(
                "SELECT {USE_COLUMNS} FROM break_glass_uses WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "break-glass use",
                name: id.chars().take(80).collect(),
            })?;
            let found = use_from_row(&row)?;
            if found.closed_at.is_some() {
                return Err(StoreError::Conflict(format!(
                    "the review of break-glass use `{id}` is already closed"
                )));
            }
            sqlx::query(
                "UPDATE break_glass_uses SET closed_at = $1, closed_by = $2, summary = $3 WHERE id = $4",
            )
            .bind(ctx.now.as_millis())
            .bind(ctx.actor.to_string())
            .bind(summary)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            Ok(BreakGlassUse {
                closed_at: Some(ctx.now),
                closed_by: Some(ctx.actor.to_string()),
                summary: Some(summary.to_owned()),
                ..found
            })
        })
        .await
    }
}
