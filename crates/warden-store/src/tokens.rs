use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::Change;
use warden_model::{Role, Timestamp, TokenName, UserName};

use crate::audit::Action;
use crate::users::user_id;
use crate::{AuditContext, Store, StoreError};

/// An API token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Stable id, also the public part of the token string.
    pub id: String,
    /// Label given at creation.
    pub name: TokenName,
    /// What the token may do.
    pub role: Role,
    /// The user the token acts as; `None` for a token that acts as itself.
    pub user: Option<UserName>,
    /// Who created it (an actor label).
    pub created_by: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Issued to a person by a passkey sign-in (`warden login`): it acts with the person's own
    /// rights, and its role caps nothing.
    pub passkey: bool,
}

/// Who a token acts for, as needed to authenticate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOwner {
    /// The token acts as itself.
    Itself,
    /// The token acts as a user, who may have been disabled since.
    User {
        /// Whether that user is disabled.
        disabled: bool,
    },
}

/// A token with the hash of its secret, for authentication only.
#[derive(Debug, Clone)]
pub struct TokenCredential {
    /// The token.
    pub token: ApiToken,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Its owner's state.
    pub owner: TokenOwner,
}

/// A token to store. The secret itself never reaches the store, only its hash.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Id chosen by the caller (it is part of the token string).
    pub id: String,
    /// Label.
    pub name: TokenName,
    /// Role.
    pub role: Role,
    /// The user it acts as.
    pub user: Option<UserName>,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Expiry.
    pub expires_at: Timestamp,
}

const TOKEN_SELECT: &str = "SELECT t.id, t.name, t.role, u.name AS user_name, u.disabled_at AS user_disabled_at, \
     t.created_by, t.created_at, t.expires_at, t.revoked_at, t.secret_hash, t.passkey \
     FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id";

fn token_from_row(row: &AnyRow) -> Result<TokenCredential, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(e.to_string());
    let name: String = row.try_get("name")?;
    let role: String = row.try_get("role")?;
    let user: Option<String> = row.try_get("user_name")?;
    let user = user
        .map(UserName::new)
        .transpose()
        .map_err(|e| corrupt(&e))?;
    let owner = match &user {
        Some(_) => TokenOwner::User {
            disabled: row.try_get::<Option<i64>, _>("user_disabled_at")?.is_some(),
        },
        None => TokenOwner::Itself,
    };
    Ok(TokenCredential {
        token: ApiToken {
            id: row.try_get("id")?,
            name: TokenName::new(name).map_err(|e| corrupt(&e))?,
            role: role.parse().map_err(|e| corrupt(&e))?,
            user,
            created_by: row.try_get("created_by")?,
            created_at: Timestamp::from_millis(row.try_get("created_at")?),
            expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
            revoked_at: row
                .try_get::<Option<i64>, _>("revoked_at")?
                .map(Timestamp::from_millis),
            passkey: row.try_get::<i64, _>("passkey")? != 0,
        },
        secret_hash: row.try_get("secret_hash")?,
        owner,
    })
}

impl Store {
    /// Stores a new token.
    pub async fn create_token(
        &self,
        ctx: &AuditContext,
        new: NewToken,
    ) -> Result<ApiToken, StoreError> {
        let action = Action {
            name: Change::TokenCreate.into(),
            target: format!("token:{}", new.name),
            details: json!({
                "id": new.id,
                "role": new.role,
                "user": new.user,
                "expires_at": new.expires_at.to_string(),
            }),
        };
        self.audited(ctx, action, async |conn| {
            let uid = match &new.user {
                Some(user) => Some(user_id(conn, user).await?),
                None => None,
            };
            let token = ApiToken {
                id: new.id,
                name: new.name,
                role: new.role,
                user: new.user,
                created_by: ctx.actor.to_string(),
                created_at: ctx.now,
                expires_at: new.expires_at,
                revoked_at: None,
                passkey: false,
            };
            sqlx::query(
                "INSERT INTO api_tokens (id, name, role, user_id, secret_hash, created_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&token.id)
            .bind(token.name.as_str())
            .bind(token.role.as_str())
            .bind(uid)
            .bind(&new.secret_hash)
            .bind(&token.created_by)
            .bind(token.created_at.as_millis())
            .bind(token.expires_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::unique(e, "token", token.name.as_str()))?;
            Ok(token)
        })
        .await
    }

    /// Revokes the token with this id, or the unrevoked token with this name.
    pub async fn revoke_token(
        &self,
        ctx: &AuditContext,
        id_or_name: &str,
    ) -> Result<ApiToken, StoreError> {
        let action = Action {
            name: Change::TokenRevoke.into(),
            target: format!("token:{id_or_name}"),
            details: serde_json::Value::Null,
        };
        self.audited(ctx, action, async |conn| {
            let sql = format!(
                "{TOKEN_SELECT} WHERE t.id = $1 OR (t.name = $1 AND t.revoked_at IS NULL) \
                 ORDER BY t.revoked_at IS NULL DESC LIMIT 1"
            );
            let row = sqlx::query(&sql)
                .bind(id_or_name)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound {
                    kind: "token",
                    name: id_or_name.to_owned(),
                });
            };
            let token = token_from_row(&row)?.token;
            if token.revoked_at.is_some() {
                return Err(StoreError::Conflict(format!(
                    "token `{id_or_name}` is already revoked"
                )));
            }
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
                .bind(ctx.now.as_millis())
                .bind(&token.id)
                .execute(&mut *conn)
                .await?;
            Ok(ApiToken {
                revoked_at: Some(ctx.now),
                ..token
            })
        })
        .await
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!("{TOKEN_SELECT} ORDER BY t.created_at DESC, t.id DESC");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok(token_from_row(row)?.token))
            .collect()
    }

    /// The token with this id and its secret's hash, for authenticating a request.
    pub async fn token_credential(&self, id: &str) -> Result<Option<TokenCredential>, StoreError> {
        let sql = format!("{TOKEN_SELECT} WHERE t.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }
}
