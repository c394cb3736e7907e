use std::sync::Arc;

use async_graphql::{Context, InputObject, MaybeUndefined, Object};
use warden_model::{GroupName, Role, TokenName, Ttl, UserName};
use warden_store::{NewToken, NewUser, Store};

use super::Capability;
use super::authz::authorize;
use super::types::{ApiToken, CreatedToken, Group, RoleValue, User};
use super::{api_error, bad_input};

/// A user to add.
#[derive(Debug, InputObject)]
pub struct CreateUserInput {
    /// Login name: lowercase letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Name for display; the login name when absent.
    pub display_name: Option<String>,
    /// Contact address.
    pub email: Option<String>,
}

/// A token to create.
#[derive(Debug, InputObject)]
pub struct CreateTokenInput {
    /// Label, unique among tokens not revoked.
    pub name: String,
    /// What it may do.
    pub role: RoleValue,
    /// The user it acts as; absent, it acts as itself.
    pub user: Option<String>,
    /// Lifetime, like `1h` or `30d` (1m to 366d).
    pub ttl: String,
}

/// Longest free text (display names, descriptions, emails) accepted.
const MAX_TEXT: usize = 256;

fn text(field: &str, value: Option<String>) -> async_graphql::Result<Option<String>> {
    match value {
        Some(v) if v.len() > MAX_TEXT => Err(bad_input(format!(
            "`{field}` is longer than {MAX_TEXT} bytes"
        ))),
        Some(v) if v.chars().any(char::is_control) => {
            Err(bad_input(format!("`{field}` contains control characters")))
        }
        other => Ok(other),
    }
}

/// A one-time enrollment link, shown once.
#[derive(Debug, Clone, async_graphql::SimpleObject)]
pub struct EnrollmentLink {
    /// Open it in the browser where the passkey will be made.
    pub url: String,
    /// When it stops working, RFC 3339.
    pub expires_at: String,
}

/// Changes. Each one is written with its audit event in one transaction.
#[derive(Debug, Default, async_graphql::MergedObject)]
pub struct Mutation(
    DirectoryMutation,
    super::ssh::SshMutation,
    super::pki::PkiMutation,
    super::sessions::SessionMutation,
    super::policy::PolicyMutation,
    super::ssh_sessions::SshSessionMutation,
    super::access::AccessMutation,
    super::reviews::ReviewMutation,
    super::vulns::VulnMutation,
    super::mesh::MeshMutation,
    super::break_glass::BreakGlassMutation,
);

/// Users, groups and tokens.
#[derive(Debug, Default)]
pub struct DirectoryMutation;

#[Object]
impl DirectoryMutation {
    /// Adds a user.
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> async_graphql::Result<User> {
        let caller = authorize(
            ctx,
            Capability::ManageUsers,
            &format!("user:{}", input.name),
        )
        .await?;
        let new = NewUser {
            name: UserName::new(input.name).map_err(bad_input)?,
            display_name: text("displayName", input.display_name)?,
            email: text("email", input.email)?,
        };
        if new.email.as_deref().is_some_and(|e| !e.contains('@')) {
            return Err(bad_input("`email` must contain @"));
        }
        let store = ctx.data::<Arc<Store>>()?;
        let user = store
            .create_user(&caller.audit, new)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(user.into())
    }

    /// Disables a user: their tokens stop working at once.
    async fn disable_user(&self, ctx: &Context<'_>, name: String) -> async_graphql::Result<User> {
        set_disabled(ctx, name, true).await
    }

    /// Enables a disabled user.
    async fn enable_user(&self, ctx: &Context<'_>, name: String) -> async_graphql::Result<User> {
        set_disabled(ctx, name, false).await
    }

    /// A one-time link (`identity.enrollment_link_ttl`, default 24 h) with which a local user
    /// registers their first passkey. Shown once; only its hash is kept.
    async fn create_enrollment_link(
        &self,
        ctx: &Context<'_>,
        user: String,
    ) -> async_graphql::Result<EnrollmentLink> {
        let caller = authorize(ctx, Capability::ManageUsers, &format!("user:{user}")).await?;
        let name = UserName::new(user).map_err(bad_input)?;
        let issued = warden_identity::issue_enrollment_token(&mut rand::rngs::OsRng);
        let ttl = ctx
            .data::<crate::config::IdentityConfig>()?
            .enrollment_link_ttl;
        let expires_at = caller.audit.now.plus(ttl);
        let store = ctx.data::<Arc<Store>>()?;
        store
            .create_enrollment_link(
                &caller.audit,
                &name,
                &issued.id,
                &issued.secret_hash,
                expires_at,
            )
            .await
            .map_err(|e| api_error(e, caller))?;
        let base = ctx.data::<super::PublicUrl>()?;
        Ok(EnrollmentLink {
            url: format!(
                "{}/enroll/{}",
                base.0.as_str().trim_end_matches('/'),
                issued.token.expose()
            ),
            expires_at: expires_at.to_string(),
        })
    }

    /// Adds a group.
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        description: Option<String>,
    ) -> async_graphql::Result<Group> {
        let caller = authorize(ctx, Capability::ManageGroups, &format!("group:{name}")).await?;
        let name = GroupName::new(name).map_err(bad_input)?;
        let description = text("description", description)?.unwrap_or_default();
        let store = ctx.data::<Arc<Store>>()?;
        let group = store
            .create_group(&caller.audit, name, description)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(group.into())
    }

    /// Puts a user in a group.
    async fn add_group_member(
        &self,
        ctx: &Context<'_>,
        group: String,
        user: String,
    ) -> async_graphql::Result<Group> {
        membership(ctx, group, user, true).await
    }

    /// Makes `user` the owner of `group` (who reviews its members in an `owner` access
    /// review); no `user` clears it. `expectedOwner` is the owner the caller read (null: none):
    /// if it is another by now, the change is refused as stale (code `STALE`) and nothing
    /// changes.
    async fn set_group_owner(
        &self,
        ctx: &Context<'_>,
        group: String,
        user: Option<String>,
        expected_owner: MaybeUndefined<String>,
    ) -> async_graphql::Result<Group> {
        let caller = authorize(ctx, Capability::ManageGroups, &format!("group:{group}")).await?;
        let group = GroupName::new(group).map_err(bad_input)?;
        let user = user.map(UserName::new).transpose().map_err(bad_input)?;
        let expected = match expected_owner {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(name) => Some(Some(UserName::new(name).map_err(bad_input)?)),
        };
        let store = ctx.data::<Arc<Store>>()?;
        let changed = store
            .set_group_owner(
                &caller.audit,
                &group,
                user.as_ref(),
                expected.as_ref().map(Option::as_ref),
            )
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(changed.into())
    }

    /// Takes a user out of a group.
    async fn remove_group_member(
        &self,
        ctx: &Context<'_>,
        group: String,
        user: String,
    ) -> async_graphql::Result<Group> {
        membership(ctx, group, user, false).await
    }

    /// Creates an API token. The token string is in the answer and nowhere else, ever.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        input: CreateTokenInput,
    ) -> async_graphql::Result<CreatedToken> {
        let caller = authorize(
            ctx,
            Capability::ManageTokens,
            &format!("token:{}", input.name),
        )
        .await?;
        let name = TokenName::new(input.name).map_err(bad_input)?;
        let user = input
            .user
            .map(UserName::new)
            .transpose()
            .map_err(bad_input)?;
        let ttl: Ttl = input.ttl.parse().map_err(bad_input)?;
        let issued = warden_identity::issue(&mut rand::rngs::OsRng);
        let new = NewToken {
            id: issued.id,
            name,
            role: Role::from(input.role),
            user,
            secret_hash: issued.secret_hash,
            expires_at: caller.audit.now.plus(ttl.as_duration()),
        };
        let store = ctx.data::<Arc<Store>>()?;
        let token = store
            .create_token(&caller.audit, new)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(CreatedToken {
            token: issued.token.expose().to_owned(),
            api_token: ApiToken::new(token, caller.audit.now),
        })
    }

    /// Revokes a token by id, or the live token with that name.
    async fn revoke_token(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> async_graphql::Result<ApiToken> {
        let caller = authorize(ctx, Capability::ManageTokens, &format!("token:{token}")).await?;
        if token.is_empty() || token.len() > 64 {
            return Err(bad_input("`token` must be a token id or name"));
        }
        let store = ctx.data::<Arc<Store>>()?;
        let revoked = store
            .revoke_token(&caller.audit, &token)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(ApiToken::new(revoked, caller.audit.now))
    }
}

async fn set_disabled(
    ctx: &Context<'_>,
    name: String,
    disabled: bool,
) -> async_graphql::Result<User> {
    let caller = authorize(ctx, Capability::ManageUsers, &format!("user:{name}")).await?;
    let name = UserName::new(name).map_err(bad_input)?;
    let store = ctx.data::<Arc<Store>>()?;
    let user = store
        .set_user_disabled(&caller.audit, &name, disabled)
        .await
        .map_err(|e| api_error(e, caller))?;
    Ok(user.into())
}

async fn membership(
    ctx: &Context<'_>,
    group: String,
    user: String,
    add: bool,
) -> async_graphql::Result<Group> {
    let caller = authorize(ctx, Capability::ManageGroups, &format!("group:{group}")).await?;
    let group = GroupName::new(group).map_err(bad_input)?;
    let user = UserName::new(user).map_err(bad_input)?;
    let store = ctx.data::<Arc<Store>>()?;
    let changed = if add {
        store.add_group_member(&caller.audit, &group, &user).await
    } else {
        store
            .remove_group_member(&caller.audit, &group, &user)
            .await
    };
    Ok(changed.map_err(|e| api_error(e, caller))?.into())
}
