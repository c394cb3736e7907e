//! Sign-in through an identity provider, and server-side web sessions.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::{Timestamp, UserName};

use crate::audit::Action;
use crate::users::new_id;
use crate::{AuditContext, Store, StoreError, User};

/// A sign-in the identity provider vouched for, to turn into a session.
#[derive(Debug, Clone)]
pub struct IdpSignIn {
    /// The provider's name in the configuration (`corp`).
    pub provider: String,
    /// The id_token's `sub`.
    pub subject: String,
    /// The login name to use when the user is created here.
    pub name: UserName,
    /// Name for display.
    pub display_name: Option<String>,
    /// The verified email, if any.
    pub email: Option<String>,
    /// The provider's groups for this person; those that exist in Warden are granted.
    pub groups: Vec<String>,
    /// Authentication methods the provider reports (`amr`).
    pub amr: Vec<String>,
    /// Authentication context class (`acr`).
    pub acr: Option<String>,
    /// SHA-256 of the OIDC state this callback used: a state works once.
    pub state_hash: String,
    /// Create the user on first sign-in (false: provisioning is SCIM-only).
    pub just_in_time: bool,
    /// What the provider calls this person (`preferred_username`, the verified email): on a
    /// first sign-in, a SCIM-provisioned user whose userName is one of these (in any case) and
    /// who has no identity at this provider yet is linked.
    pub known_as: Vec<String>,
    /// The session to open.
    pub session: NewSession,
}

/// A session to open.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Public id.
    pub id: String,
    /// SHA-256 of its secret, hex.
    pub secret_hash: String,
    /// When it ends at the latest.
    pub expires_at: Timestamp,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    /// Signed in at the provider; must register a passkey before anything else.
    PasskeyEnrollment,
    /// Signed in at the provider; must assert a registered passkey.
    Passkey,
    /// Fully signed in.
    Active,
}

impl SessionStage {
    fn as_str(self) -> &'static str {
        match self {
            SessionStage::PasskeyEnrollment => "passkey_enrollment",
            SessionStage::Passkey => "passkey",
            SessionStage::Active => "active",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "passkey_enrollment" => Ok(SessionStage::PasskeyEnrollment),
            "passkey" => Ok(SessionStage::Passkey),
            "active" => Ok(SessionStage::Active),
            other => Err(StoreError::Corrupt(format!("session stage `{other}`"))),
        }
    }
}

/// A web session as stored.
#[derive(Debug, Clone)]
pub struct Session {
    /// Public id.
    pub id: String,
    /// SHA-256 of its secret, hex.
    pub secret_hash: String,
    /// Whose.
    pub user: User,
    /// Where it stands.
    pub stage: SessionStage,
    /// How it began (`oidc:corp`).
    pub method: String,
    /// The provider's `amr`.
    pub amr: Vec<String>,
    /// The provider's `acr`.
    pub acr: Option<String>,
    /// Opened.
    pub created_at: Timestamp,
    /// Last request.
    pub last_seen_at: Timestamp,
    /// Absolute end.
    pub expires_at: Timestamp,
    /// Ended early (logout, admin, idle).
    pub ended_at: Option<Timestamp>,
}

fn session_from_row(row: &AnyRow) -> Result<Session, StoreError> {
    let amr: String = row.try_get("amr")?;
    let stage: String = row.try_get("stage")?;
    let name: String = row.try_get("name")?;
    Ok(Session {
        id: row.try_get("id")?,
        secret_hash: row.try_get("secret_hash")?,
        user: User {
            id: row.try_get("user_id")?,
            name: UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            display_name: row.try_get("display_name")?,
            email: row.try_get("email")?,
            created_at: Timestamp::from_millis(row.try_get("user_created_at")?),
            disabled_at: row
                .try_get::<Option<i64>, _>("disabled_at")?
                .map(Timestamp::from_millis),
        },
        stage: SessionStage::parse(&stage)?,
        method: row.try_get("method")?,
        amr: serde_json::from_str(&amr).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        acr: row.try_get("acr")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        last_seen_at: Timestamp::from_millis(row.try_get("last_seen_at")?),
        expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
        ended_at: row
            .try_get::<Option<i64>, _>("ended_at")?
            .map(Timestamp::from_millis),
    })
}

async fn find_user(
    conn: &mut AnyConnection,
    sql: &str,
    key: &[&str],
) -> Result<Option<User>, StoreError> {
    let mut query = sqlx::query(sql);
    for k in key {
        query = query.bind(*k);
    }
    let row = query.fetch_optional(&mut *conn).await?;
    let Some(row) = row else { return Ok(None) };
    let name: String = row.try_get("name")?;
    Ok(Some(User {
        id: row.try_get("id")?,
        name: UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        disabled_at: row
            .try_get::<Option<i64>, _>("disabled_at")?
            .map(Timestamp::from_millis),
    }))
}

/// The SCIM-provisioned user this first sign-in is, linked to the provider's identity.
async fn scim_link(
    conn: &mut AnyConnection,
    sign_in: &IdpSignIn,
    now: Timestamp,
) -> Result<Option<User>, StoreError> {
    for known in &sign_in.known_as {
        let found = find_user(
            conn,
            "SELECT u.id, u.name, u.display_name, u.email, u.created_at, u.disabled_at \
             FROM scim_users s JOIN users u ON u.id = s.user_id \
             WHERE s.user_name_key = $1 AND NOT EXISTS \
             (SELECT 1 FROM user_identities i WHERE i.user_id = u.id AND i.provider = $2)",
            &[&known.to_lowercase(), &sign_in.provider],
        )
        .await?;
        if let Some(user) = found {
            sqlx::query(
                "INSERT INTO user_identities (provider, subject, user_id, email, created_at, last_login_at) \
                 VALUES ($1, $2, $3, $4, $5, $5)",
            )
            .bind(&sign_in.provider)
            .bind(&sign_in.subject)
            .bind(&user.id)
            .bind(sign_in.email.as_deref())
            .bind(now.as_millis())
            .execute(&mut *conn)
            .await?;
            return Ok(Some(user));
        }
    }
    Ok(None)
}

impl Store {
    /// Turns a sign-in the provider vouched for into a session, audited as `auth.login`: the
    /// state is spent, the user found by their provider identity (or created, just in time),
    /// their provider groups that exist here granted (and earlier grants no longer claimed
    /// taken back), and a session opened at the passkey step. Refusals (a replayed state, a
    /// disabled or unprovisioned user, a name taken by someone else) change nothing and are
    /// recorded as failures.
    pub async fn sign_in_with_idp(
        &self,
        ctx: &AuditContext,
        sign_in: &IdpSignIn,
    ) -> Result<(User, SessionStage), StoreError> {
        let action = Action {
            name: Change::AuthLogin.into(),
            target: format!("idp:{}:{}", sign_in.provider, sign_in.subject),
            details: json!({
                "method": format!("oidc:{}", sign_in.provider),
                "email": sign_in.email,
                "groups": sign_in.groups,
                "amr": sign_in.amr,
                "acr": sign_in.acr,
                "session": sign_in.session.id,
            }),
        };
        self.audited(ctx, action, async |conn| {
            let used = sqlx::query(
                "INSERT INTO oidc_used_states (state_hash, used_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&sign_in.state_hash)
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await?;
            if used.rows_affected() == 0 {
                return Err(StoreError::Conflict(
                    "this sign-in was already completed (a replayed callback)".to_owned(),
                ));
            }
            let linked = find_user(
                conn,
                "SELECT u.id, u.name, u.display_name, u.email, u.created_at, u.disabled_at FROM user_identities i \
                 JOIN users u ON u.id = i.user_id WHERE i.provider = $1 AND i.subject = $2",
                &[&sign_in.provider, &sign_in.subject],
            )
            .await?;
            let provisioned = match linked {
                Some(_) => None,
                None => scim_link(conn, sign_in, ctx.now).await?,
            };
            let user = match linked.or(provisioned) {
                Some(user) => user,
                None if !sign_in.just_in_time => {
                    return Err(StoreError::Conflict(format!(
                        "no user is provisioned for this {} identity; provisioning is SCIM-only",
                        sign_in.provider
                    )));
                }
                None => {
                    let taken = find_user(
                        conn,
                        "SELECT id, name, display_name, email, created_at, disabled_at FROM users WHERE name = $1",
                        &[sign_in.name.as_str()],
                    )
                    .await?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "user `{}` already exists and is not linked to {}; an admin must resolve it",
                            sign_in.name, sign_in.provider
                        )));
                    }
                    let user = User {
                        id: new_id(),
                        name: sign_in.name.clone(),
                        display_name: sign_in
                            .display_name
                            .clone()
                            .unwrap_or_else(|| sign_in.name.to_string()),
                        email: sign_in.email.clone(),
                        created_at: ctx.now,
                        disabled_at: None,
                    };
                    sqlx::query(
                        "INSERT INTO users (id, name, display_name, email, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&user.id)
                    .bind(user.name.as_str())
                    .bind(&user.display_name)
                    .bind(user.email.as_deref())
                    .bind(ctx.now.as_millis())
                    .execute(&mut *conn)
                    .await?;
                    sqlx::query(
                        "INSERT INTO user_identities (provider, subject, user_id, email, created_at, last_login_at) \
                         VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(&sign_in.provider)
                    .bind(&sign_in.subject)
                    .bind(&user.id)
                    .bind(sign_in.email.as_deref())
                    .bind(ctx.now.as_millis())
                    .execute(&mut *conn)
                    .await?;
                    user
                }
            };
            if user.disabled_at.is_some() {
                return Err(StoreError::Conflict(format!("user `{}` is disabled", user.name)));
            }
            sqlx::query(
                "UPDATE user_identities SET last_login_at = $1, email = $2 WHERE provider = $3 AND subject = $4",
            )
            .bind(ctx.now.as_millis())
            .bind(sign_in.email.as_deref())
            .bind(&sign_in.provider)
            .bind(&sign_in.subject)
            .execute(&mut *conn)
            .await?;
            sync_idp_groups(conn, ctx, &sign_in.provider, &user.id, &sign_in.groups).await?;
            // A person with a usable passkey must assert it; one without must register one.
            let usable = sqlx::query(
                "SELECT 1 FROM passkeys WHERE user_id = $1 AND removed_at IS NULL AND locked_at IS NULL LIMIT 1",
            )
            .bind(&user.id)
            .fetch_optional(&mut *conn)
            .await?;
            let stage = if usable.is_some() {
                SessionStage::Passkey
            } else {
                SessionStage::PasskeyEnrollment
            };
            let opened = OpenedSession {
                user_id: &user.id,
                stage,
                method: &format!("oidc:{}", sign_in.provider),
                amr: &sign_in.amr,
                acr: sign_in.acr.as_deref(),
            };
            insert_session(conn, &sign_in.session, &opened, ctx.now).await?;
            Ok((user, stage))
        })
        .await
    }

    /// The session with public id `id`, with its user.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id, s.secret_hash, s.user_id, s.stage, s.method, s.amr, s.acr, s.created_at, s.last_seen_at, \
             s.expires_at, s.ended_at, u.name, u.display_name, u.email, u.created_at AS user_created_at, u.disabled_at \
             FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Open sessions (not ended, not past their lifetime), of one user or of everyone, newest
    /// first.
    pub async fn open_sessions(
        &self,
        user: Option<&UserName>,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.secret_hash, s.user_id, s.stage, s.method, s.amr, s.acr, s.created_at, s.last_seen_at, \
             s.expires_at, s.ended_at, u.name, u.display_name, u.email, u.created_at AS user_created_at, u.disabled_at \
             FROM web_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.ended_at IS NULL AND s.expires_at > $1 AND ($2 = '' OR u.name = $2) \
             ORDER BY s.created_at DESC LIMIT 1000",
        )
        .bind(now.as_millis())
        .bind(user.map(UserName::as_str).unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Removes every passkey of `user` and ends their sessions, audited as `passkey.reset`:
    /// they must enroll again (through the identity provider, or a new enrollment link).
    pub async fn reset_passkeys(
        &self,
        ctx: &AuditContext,
        user: &UserName,
    ) -> Result<u64, StoreError> {
        let action = Action {
            name: Change::PasskeyReset.into(),
            target: format!("user:{user}"),
            details: serde_json::Value::Null,
        };
        self.audited(ctx, action, async |conn| {
            let uid = crate::users::user_id(conn, user).await?;
            let removed = sqlx::query(
                "UPDATE passkeys SET removed_at = $1 WHERE user_id = $2 AND removed_at IS NULL",
            )
            .bind(ctx.now.as_millis())
            .bind(&uid)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE web_sessions SET ended_at = $1, end_reason = 'passkeys reset' WHERE user_id = $2 AND ended_at IS NULL",
            )
            .bind(ctx.now.as_millis())
            .bind(&uid)
            .execute(&mut *conn)
            .await?;
            Ok(removed.rows_affected())
        })
        .await
    }

    /// Records a one-time code for `warden login` (its hash), audited as `auth.cli.authorize`.
    pub async fn create_cli_code(
        &self,
        ctx: &AuditContext,
        user: &User,
        code_hash: &str,
        challenge: &str,
        redirect_uri: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::AuthCliAuthorize.into(),
            target: format!("user:{}", user.name),
            details: json!({ "redirect_uri": redirect_uri }),
        };
        self.audited(ctx, action, async |conn| {
            sqlx::query(
                "INSERT INTO cli_codes (code_hash, user_id, challenge, redirect_uri, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(code_hash)
            .bind(&user.id)
            .bind(challenge)
            .bind(redirect_uri)
            .bind(ctx.now.as_millis())
            .bind(expires_at.as_millis())
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// Spends a `warden login` code and stores the CLI credential it buys, audited as
    /// `auth.cli.token`. `check(challenge, redirect_uri)` verifies PKCE and the redirect; an
    /// unknown, used or expired code, or a failed check, changes nothing and is recorded.
    pub async fn redeem_cli_code(
        &self,
        ctx: &AuditContext,
        code_hash: &str,
        check: impl FnOnce(&str, &str) -> Result<(), String>,
        token: &crate::NewToken,
    ) -> Result<UserName, StoreError> {
        let action = Action {
            name: Change::AuthCliToken.into(),
            target: format!("token:{}", token.name),
            details: json!({ "id": token.id, "expires_at": token.expires_at.to_string() }),
        };
        self.audited(ctx, action, async |conn| {
            let row = sqlx::query(
                "SELECT c.user_id, c.challenge, c.redirect_uri, c.expires_at, c.used_at, u.name, u.disabled_at \
                 FROM cli_codes c JOIN users u ON u.id = c.user_id WHERE c.code_hash = $1",
            )
            .bind(code_hash)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::Conflict("unknown login code".to_owned()));
            };
            if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
                return Err(StoreError::Conflict("this login code was already used".to_owned()));
            }
            if row.try_get::<i64, _>("expires_at")? <= ctx.now.as_millis() {
                return Err(StoreError::Conflict("this login code has expired; run warden login again".to_owned()));
            }
            if row.try_get::<Option<i64>, _>("disabled_at")?.is_some() {
                return Err(StoreError::Conflict("the user is disabled".to_owned()));
            }
            let challenge: String = row.try_get("challenge")?;
            let redirect: String = row.try_get("redirect_uri")?;
            check(&challenge, &redirect).map_err(StoreError::Conflict)?;
            let name: String = row.try_get("name")?;
            let user_id: String = row.try_get("user_id")?;
            sqlx::query("UPDATE cli_codes SET used_at = $1 WHERE code_hash = $2")
                .bind(ctx.now.as_millis())
                .bind(code_hash)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO api_tokens (id, name, role, user_id, secret_hash, created_by, created_at, expires_at, passkey) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)",
            )
            .bind(&token.id)
            .bind(token.name.as_str())
            .bind(token.role.as_str())
            .bind(&user_id)
            .bind(&token.secret_hash)
            .bind(format!("user:{name}"))
            .bind(ctx.now.as_millis())
            .bind(token.expires_at.as_millis())
            .execute(&mut *conn)
            .await?;
            UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .await
    }

    /// Notes activity on a session (for the idle timeout). Not audited: it changes no access.
    pub async fn touch_session(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL")
            .bind(now.as_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a session, audited as `session.end` with `reason` (`logout`, `idle`, `admin`).
    pub async fn end_session(
        &self,
        ctx: &AuditContext,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::SessionEnd.into(),
            target: format!("session:{id}"),
            details: json!({ "reason": reason }),
        };
        self.audited(ctx, action, async |conn| {
            let ended = sqlx::query(
                "UPDATE web_sessions SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL",
            )
            .bind(ctx.now.as_millis())
            .bind(reason)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if ended.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    kind: "open session",
                    name: id.to_owned(),
                });
            }
            Ok(())
        })
        .await
    }
}

/// Who a new session is for and how it began.
pub(crate) struct OpenedSession<'a> {
    pub user_id: &'a str,
    pub stage: SessionStage,
    pub method: &'a str,
    pub amr: &'a [String],
    pub acr: Option<&'a str>,
}

/// Writes a new web session (its secret only as a hash).
pub(crate) async fn insert_session(
    conn: &mut AnyConnection,
    session: &NewSession,
    opened: &OpenedSession<'_>,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO web_sessions (id, secret_hash, user_id, stage, method, amr, acr, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(&session.id)
    .bind(&session.secret_hash)
    .bind(opened.user_id)
    .bind(opened.stage.as_str())
    .bind(opened.method)
    .bind(serde_json::to_string(opened.amr).map_err(|e| StoreError::Corrupt(e.to_string()))?)
    .bind(opened.acr)
    .bind(now.as_millis())
    .bind(session.expires_at.as_millis())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Grants the provider's groups that exist here and takes back earlier grants of this
/// provider that it no longer claims. Memberships an admin made are left alone.
async fn sync_idp_groups(
    conn: &mut AnyConnection,
    ctx: &AuditContext,
    provider: &str,
    user_id: &str,
    groups: &[String],
) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT g.id, g.name FROM idp_group_grants x JOIN groups g ON g.id = x.group_id \
         WHERE x.provider = $1 AND x.user_id = $2",
    )
    .bind(provider)
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &rows {
        let name: String = row.try_get("name")?;
        if !groups.contains(&name) {
            let group_id: String = row.try_get("id")?;
            sqlx::query("DELETE FROM idp_group_grants WHERE provider = $1 AND user_id = $2 AND group_id = $3")
                .bind(provider)
                .bind(user_id)
                .bind(&group_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                .bind(&group_id)
                .bind(user_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    for name in groups {
        let group = sqlx::query("SELECT id FROM groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(group) = group else { continue };
        let group_id: String = group.try_get("id")?;
        let member = sqlx::query(
            "INSERT INTO group_members (group_id, user_id, user_name, added_at) \
             SELECT $1, id, name, $3 FROM users WHERE id = $2 ON CONFLICT DO NOTHING",
        )
        .bind(&group_id)
        .bind(user_id)
        .bind(ctx.now.as_millis())
        .execute(&mut *conn)
        .await?;
        if member.rows_affected() > 0 {
            sqlx::query(
                "INSERT INTO idp_group_grants (provider, user_id, group_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(provider)
            .bind(user_id)
            .bind(&group_id)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
