use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;
use warden_model::Change;
use warden_model::{GroupName, Timestamp, UserName};

use crate::audit::Action;
use crate::audit::Name;
use crate::{AuditContext, Page, PageRequest, Store, StoreError};

/// A person or service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Login name, unique.
    pub name: UserName,
    /// Name for display.
    pub display_name: String,
    /// Contact address, if known.
    pub email: Option<String>,
    /// When the user was added.
    pub created_at: Timestamp,
    /// When the user was disabled; a disabled user's credentials stop working.
    pub disabled_at: Option<Timestamp>,
}

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Login name.
    pub name: UserName,
    /// Name for display; the login name when absent.
    pub display_name: Option<String>,
    /// Contact address.
    pub email: Option<String>,
}

const USER_COLUMNS: &str = "id, name, display_name, email, created_at, disabled_at";

fn user_from_row(row: &AnyRow) -> Result<User, StoreError> {
    let name: String = row.try_get("name")?;
    Ok(User {
        id: row.try_get("id")?,
        name: UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        disabled_at: row
            .try_get::<Option<i64>, _>("disabled_at")?
            .map(Timestamp::from_millis),
    })
}

/// A new row id: a UUIDv7 (time-ordered) in simple form.
pub fn new_id() -> String {
    Uuid::now_v7().simple().to_string()
}

pub(crate) async fn user_id(
    conn: &mut AnyConnection,
    name: &UserName,
) -> Result<String, StoreError> {
    sqlx::query("SELECT id FROM users WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get::<String, _>("id"))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            kind: "user",
            name: name.to_string(),
        })
}

async fn fetch_user(conn: &mut AnyConnection, name: &UserName) -> Result<User, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
    let row = sqlx::query(&sql)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => user_from_row(&row),
        None => Err(StoreError::NotFound {
            kind: "user",
            name: name.to_string(),
        }),
    }
}

impl Store {
    /// Adds a user.
    pub async fn create_user(&self, ctx: &AuditContext, new: NewUser) -> Result<User, StoreError> {
        let display_name = new.display_name.unwrap_or_else(|| new.name.to_string());
        let action = Action {
            name: Change::UserCreate.into(),
            target: format!("user:{}", new.name),
            details: json!({ "display_name": display_name, "email": new.email }),
        };
        self.audited(ctx, action, async |conn| {
            let user = User {
                id: new_id(),
                name: new.name,
                display_name,
                email: new.email,
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
            .bind(user.created_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::unique(e, "user", user.name.as_str()))?;
            Ok(user)
        })
        .await
    }

    /// Disables (`true`) or re-enables (`false`) a user. Disabling an already disabled user,
    /// or enabling an enabled one, is a conflict, so the audit trail shows only real changes.
    ///
    /// Disabling offboards in the same transaction: the user's API tokens are revoked, their
    /// web sessions ended, and their unexpired SSH certificates (their own and the proxy's
    /// session certificates for them) revoked into the KRL; the event's details count each.
    /// Enabling again restores none of it: a returning person signs in afresh.
    pub async fn set_user_disabled(
        &self,
        ctx: &AuditContext,
        name: &UserName,
        disabled: bool,
    ) -> Result<User, StoreError> {
        let action = Action {
            name: Name::Change(if disabled {
                Change::UserDisable
            } else {
                Change::UserEnable
            }),
            target: format!("user:{name}"),
            details: serde_json::Value::Null,
        };
        self.audited_detailed(ctx, action, async |conn| {
            let user = fetch_user(conn, name).await?;
            if user.disabled_at.is_some() == disabled {
                let state = if disabled { "disabled" } else { "enabled" };
                return Err(StoreError::Conflict(format!(
                    "user `{name}` is already {state}"
                )));
            }
            let disabled_at = disabled.then_some(ctx.now);
            sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                .bind(disabled_at.map(Timestamp::as_millis))
                .bind(&user.id)
                .execute(&mut *conn)
                .await?;
            let details = if disabled {
                offboard(conn, &user, ctx.now).await?
            } else {
                serde_json::Value::Null
            };
            Ok((
                User {
                    disabled_at,
                    ..user
                },
                details,
            ))
        })
        .await
    }

    /// One user by name.
    pub async fn user(&self, name: &UserName) -> Result<Option<User>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        match fetch_user(&mut conn, name).await {
            Ok(user) => Ok(Some(user)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A page of users in name order.
    pub async fn users(&self, page: &PageRequest) -> Result<Page<User>, StoreError> {
        let (sql, binds) = page.sql(USER_COLUMNS, "users");
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(users))
    }

    /// The groups a user is in at `now`, in name order: as a member, or through a grant
    /// that has not expired or ended.
    pub async fn user_groups(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> Result<Vec<GroupName>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.name FROM group_members m JOIN groups g ON g.id = m.group_id WHERE m.user_id = $1 \
             UNION SELECT g.name FROM grants gr JOIN groups g ON g.id = gr.group_id \
             WHERE gr.user_id = $1 AND gr.ended_at IS NULL AND gr.expires_at > $2 ORDER BY 1",
        )
        .bind(user_id)
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                GroupName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }
}

/// Ends everything a disabled person holds, in the disabling transaction: API tokens, web
/// sessions, unexpired SSH certificates (key ids `user:NAME token:…` and the proxy's
/// `session:… user:NAME`) and live grants. Returns how many of each, for the audit event.
pub(crate) async fn offboard(
    conn: &mut sqlx::AnyConnection,
    user: &User,
    now: Timestamp,
) -> Result<serde_json::Value, StoreError> {
    let tokens = sqlx::query(
        "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now.as_millis())
    .bind(&user.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let sessions = sqlx::query(
        "UPDATE web_sessions SET ended_at = $1, end_reason = 'user disabled' \
         WHERE user_id = $2 AND ended_at IS NULL",
    )
    .bind(now.as_millis())
    .bind(&user.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    // By the holder's id. Certificates issued before the id was stored (migration 0018) are
    // matched by their key id's text until they expire: prefix and suffix compared as text,
    // since user names may hold `_`, a LIKE wildcard.
    let own = format!("user:{} token:", user.name);
    let proxied = format!(" user:{}", user.name);
    let certificates = sqlx::query(
        "UPDATE ssh_certificates SET revoked_at = $1 \
         WHERE kind = 'user' AND revoked_at IS NULL AND valid_before > $2 \
         AND (holder_user_id = $5 \
              OR (holder_user_id IS NULL \
                  AND (substr(key_id, 1, length($3)) = $3 \
                       OR (substr(key_id, 1, 8) = 'session:' \
                           AND substr(key_id, length(key_id) - length($4) + 1) = $4))))",
    )
    .bind(now.as_millis())
    .bind(now.as_millis() / 1000)
    .bind(&own)
    .bind(&proxied)
    .bind(&user.id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let grants = crate::access::end_grants(conn, &user.id, now).await?;
    // Their devices leave the mesh; a device enrolled again needs a new sign-in.
    let devices = sqlx::query("DELETE FROM mesh_nodes WHERE kind = 'device' AND owner = $1")
        .bind(user.name.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(serde_json::json!({
        "tokens_revoked": tokens,
        "web_sessions_ended": sessions,
        "ssh_certificates_revoked": certificates,
        "grants_ended": grants,
        "mesh_devices_removed": devices,
    }))
}
