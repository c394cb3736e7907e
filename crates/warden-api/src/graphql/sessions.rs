//! Web sessions and passkeys for admins: list open sessions, end any of them, reset a
//! person's passkeys.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_model::UserName;
use warden_store::{SessionStage, Store};

use super::Capability;
use super::authz::authorize;
use super::{api_error, bad_input};

/// An open web session (never its secret).
#[derive(Debug, Clone, SimpleObject)]
pub struct WebSession {
    /// Its id (what `endSession` takes).
    pub id: String,
    /// Whose.
    pub user: String,
    /// `passkey_enrollment`, `passkey` or `active`.
    pub stage: String,
    /// How it began (`oidc:corp`, `passkey`, `enrollment-link`).
    pub method: String,
    /// Opened, RFC 3339.
    pub created_at: String,
    /// Last request, RFC 3339.
    pub last_seen_at: String,
    /// Ends at the latest, RFC 3339.
    pub expires_at: String,
}

/// Sessions.
#[derive(Debug, Default)]
pub struct SessionQuery;

#[Object]
impl SessionQuery {
    /// Open web sessions, of one user or of everyone, newest first.
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        user: Option<String>,
    ) -> async_graphql::Result<Vec<WebSession>> {
        let caller = authorize(ctx, Capability::ReadDirectory, "sessions").await?;
        let user = user.map(UserName::new).transpose().map_err(bad_input)?;
        let store = ctx.data::<Arc<Store>>()?;
        let sessions = store
            .open_sessions(user.as_ref(), caller.audit.now)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(sessions
            .into_iter()
            .map(|s| WebSession {
                id: s.id,
                user: s.user.name.to_string(),
                stage: match s.stage {
                    SessionStage::PasskeyEnrollment => "passkey_enrollment",
                    SessionStage::Passkey => "passkey",
                    SessionStage::Active => "active",
                }
                .to_owned(),
                method: s.method,
                created_at: s.created_at.to_string(),
                last_seen_at: s.last_seen_at.to_string(),
                expires_at: s.expires_at.to_string(),
            })
            .collect())
    }
}

/// Session and passkey changes.
#[derive(Debug, Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Ends a web session at once.
    async fn end_session(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<bool> {
        let caller = authorize(ctx, Capability::ManageUsers, &format!("session:{id}")).await?;
        let store = ctx.data::<Arc<Store>>()?;
        store
            .end_session(&caller.audit, &id, "admin")
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(true)
    }

    /// Removes every passkey of a user and ends their sessions; they enroll again. Returns
    /// how many passkeys were removed.
    async fn reset_passkeys(&self, ctx: &Context<'_>, user: String) -> async_graphql::Result<i32> {
        let caller = authorize(ctx, Capability::ManageUsers, &format!("user:{user}")).await?;
        let user = UserName::new(user).map_err(bad_input)?;
        let store = ctx.data::<Arc<Store>>()?;
        let removed = store
            .reset_passkeys(&caller.audit, &user)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(i32::try_from(removed).unwrap_or(i32::MAX))
    }
}
