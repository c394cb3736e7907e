//! Passkeys (WebAuthn credentials) and the one-time enrollment links of local users.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::Change;
use warden_model::{Timestamp, UserName};

use crate::audit::Action;
use crate::audit::Name;
use crate::signin::{OpenedSession, insert_session};
use crate::users::{new_id, user_id};
use crate::{AuditContext, NewSession, SessionStage, Store, StoreError, User};

/// A registered passkey.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    /// Stable id.
    pub id: String,
    /// Whose.
    pub user_id: String,
    /// The WebAuthn credential id, base64url.
    pub credential_id: String,
    /// What the user called it.
    pub name: String,
    /// The credential as the WebAuthn library keeps it (public key, counter), JSON.
    pub credential: String,
    /// Registered.
    pub created_at: Timestamp,
    /// Last sign-in with it.
    pub last_used_at: Option<Timestamp>,
    /// Locked (a possible clone) and why.
    pub locked: Option<String>,
}

fn passkey_from_row(row: &AnyRow) -> Result<StoredPasskey, StoreError> {
    Ok(StoredPasskey {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        credential_id: row.try_get("credential_id")?,
        name: row.try_get("name")?,
        credential: row.try_get("credential")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(Timestamp::from_millis),
        locked: match row.try_get::<Option<i64>, _>("locked_at")? {
            Some(_) => Some(
                row.try_get::<Option<String>, _>("lock_reason")?
                    .unwrap_or_default(),
            ),
            None => None,
        },
    })
}

const PASSKEY_COLUMNS: &str = "id, user_id, credential_id, name, credential, created_at, last_used_at, locked_at, lock_reason";

impl Store {
    /// Records an enrollment link for `user` (its secret only as a hash), audited as
    /// `user.enroll_link.create`.
    pub async fn create_enrollment_link(
        &self,
        ctx: &AuditContext,
        user: &UserName,
        id: &str,
        secret_hash: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::UserEnrollLinkCreate.into(),
            target: format!("user:{user}"),
            details: json!({ "link_id": id, "expires_at": expires_at.to_string() }),
        };
        self.audited(ctx, action, async |conn| {
            let uid = user_id(conn, user).await?;
            sqlx::query(
                "INSERT INTO enrollment_links (id, secret_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(secret_hash)
            .bind(&uid)
            .bind(ctx.now.as_millis())
            .bind(expires_at.as_millis())
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// Spends enrollment link `id` and opens a session at the passkey-enrollment step,
    /// audited as `auth.enroll`. `check` compares the presented secret with the stored hash.
    /// A used, expired or wrong link, or a disabled user, changes nothing and is recorded.
    pub async fn use_enrollment_link(
        &self,
        ctx: &AuditContext,
        id: &str,
        check: impl FnOnce(&str) -> bool,
        session: &NewSession,
    ) -> Result<User, StoreError> {
        let action = Action {
            name: Change::AuthEnroll.into(),
            target: format!("enroll-link:{id}"),
            details: json!({ "session": session.id }),
        };
        self.audited(ctx, action, async |conn| {
            let row = sqlx::query(
                "SELECT l.secret_hash, l.expires_at, l.used_at, u.id, u.name, u.display_name, u.email, u.created_at, u.disabled_at \
                 FROM enrollment_links l JOIN users u ON u.id = l.user_id WHERE l.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::Conflict("unknown enrollment link".to_owned()));
            };
            if !check(&row.try_get::<String, _>("secret_hash")?) {
                return Err(StoreError::Conflict("unknown enrollment link".to_owned()));
            }
            if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
                return Err(StoreError::Conflict(
                    "this enrollment link was already used; ask an admin for a new one".to_owned(),
                ));
            }
            if row.try_get::<i64, _>("expires_at")? <= ctx.now.as_millis() {
                return Err(StoreError::Conflict(
                    "this enrollment link has expired; ask an admin for a new one".to_owned(),
                ));
            }
            let name: String = row.try_get("name")?;
            let user = User {
                id: row.try_get("id")?,
                name: UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                display_name: row.try_get("display_name")?,
                email: row.try_get("email")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                disabled_at: row
                    .try_get::<Option<i64>, _>("disabled_at")?
                    .map(Timestamp::from_millis),
            };
            if user.disabled_at.is_some() {
                return Err(StoreError::Conflict(format!("user `{}` is disabled", user.name)));
            }
            sqlx::query("UPDATE enrollment_links SET used_at = $1 WHERE id = $2")
                .bind(ctx.now.as_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
            let opened = OpenedSession {
                user_id: &user.id,
                stage: SessionStage::PasskeyEnrollment,
                method: "enrollment-link",
                amr: &[],
                acr: None,
            };
            insert_session(conn, session, &opened, ctx.now).await?;
            Ok(user)
        })
        .await
    }

    /// The user's passkeys that are not removed (locked ones included, marked).
    pub async fn passkeys(&self, user_id: &str) -> Result<Vec<StoredPasskey>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 AND removed_at IS NULL ORDER BY created_at"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(passkey_from_row).collect()
    }

    /// One stored credential, any person's (the oldest), as the shape sign-in's stand-ins for
    /// unknown names copy; `None` when nobody has a passkey.
    pub async fn passkey_template(&self) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT credential FROM passkeys ORDER BY created_at, id LIMIT 1")
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The passkey with WebAuthn credential id `credential_id`.
    pub async fn passkey_by_credential(
        &self,
        credential_id: &str,
    ) -> Result<Option<StoredPasskey>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1 AND removed_at IS NULL"
        ))
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(passkey_from_row).transpose()
    }

    /// Registers a passkey for the session's user and completes the session, audited as
    /// `passkey.register`.
    pub async fn register_passkey(
        &self,
        ctx: &AuditContext,
        session_id: &str,
        user_id: &str,
        credential_id: &str,
        name: &str,
        credential: &str,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::PasskeyRegister.into(),
            target: format!("passkey:{credential_id}"),
            details: json!({ "name": name, "session": session_id }),
        };
        self.audited(ctx, action, async |conn| {
            sqlx::query(
                "INSERT INTO passkeys (id, user_id, credential_id, name, credential, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new_id())
            .bind(user_id)
            .bind(credential_id)
            .bind(name)
            .bind(credential)
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::unique(e, "passkey", credential_id))?;
            complete_session(conn, session_id, ctx.now).await
        })
        .await
    }

    /// Records a sign-in assertion with a passkey (its new counter in `credential`) and
    /// completes the session `session_id`, audited as `auth.passkey`, or opens `new_session`
    /// (a passkey-only sign-in), audited as `auth.login`, with whether the authenticator
    /// verified the user.
    pub async fn passkey_asserted(
        &self,
        ctx: &AuditContext,
        (credential_id, credential, user_verified): (&str, &str, bool),
        session_id: Option<&str>,
        new_session: Option<(&str, &NewSession)>,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Name::Change(if new_session.is_some() {
                Change::AuthLogin
            } else {
                Change::AuthPasskey
            }),
            target: format!("passkey:{credential_id}"),
            details: json!({
                "session": session_id.or(new_session.map(|(_, s)| s.id.as_str())),
                "user_verified": user_verified,
            }),
        };
        self.audited(ctx, action, async |conn| {
            let updated = sqlx::query(
                "UPDATE passkeys SET credential = $1, last_used_at = $2 WHERE credential_id = $3 \
                 AND removed_at IS NULL AND locked_at IS NULL",
            )
            .bind(credential)
            .bind(ctx.now.as_millis())
            .bind(credential_id)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(StoreError::Conflict(
                    "this passkey is locked or removed".to_owned(),
                ));
            }
            if let Some(id) = session_id {
                complete_session(conn, id, ctx.now).await?;
            }
            if let Some((user_id, session)) = new_session {
                let opened = OpenedSession {
                    user_id,
                    stage: SessionStage::Active,
                    method: "passkey",
                    amr: &["hwk".to_owned()],
                    acr: None,
                };
                insert_session(conn, session, &opened, ctx.now).await?;
            }
            Ok(())
        })
        .await
    }

    /// Removes one of `user_id`'s passkeys, audited as `passkey.remove`. The caller has checked
    /// an assertion with another of their passkeys.
    pub async fn remove_passkey(
        &self,
        ctx: &AuditContext,
        user_id: &str,
        passkey_id: &str,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::PasskeyRemove.into(),
            target: format!("passkey-id:{passkey_id}"),
            details: serde_json::Value::Null,
        };
        self.audited(ctx, action, async |conn| {
            let removed = sqlx::query(
                "UPDATE passkeys SET removed_at = $1 WHERE id = $2 AND user_id = $3 AND removed_at IS NULL",
            )
            .bind(ctx.now.as_millis())
            .bind(passkey_id)
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
            if removed.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    kind: "passkey",
                    name: passkey_id.to_owned(),
                });
            }
            Ok(())
        })
        .await
    }

    /// Locks a passkey (a sign count that went backwards: a possible clone), audited as
    /// `passkey.lock`.
    pub async fn lock_passkey(
        &self,
        ctx: &AuditContext,
        credential_id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::PasskeyLock.into(),
            target: format!("passkey:{credential_id}"),
            details: json!({ "reason": reason }),
        };
        self.audited(ctx, action, async |conn| {
            sqlx::query(
                "UPDATE passkeys SET locked_at = $1, lock_reason = $2 WHERE credential_id = $3 AND locked_at IS NULL",
            )
            .bind(ctx.now.as_millis())
            .bind(reason)
            .bind(credential_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }
}

async fn complete_session(
    conn: &mut sqlx::AnyConnection,
    session_id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE web_sessions SET stage = 'active', last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL",
    )
    .bind(now.as_millis())
    .bind(session_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict("the session has ended".to_owned()));
    }
    Ok(())
}
