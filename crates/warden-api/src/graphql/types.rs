//! GraphQL object types. Times are RFC 3339 strings in UTC.

use std::sync::Arc;

use async_graphql::connection::CursorType;
use async_graphql::{ComplexObject, Context, Enum, ID, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use warden_model::{Role, Timestamp};
use warden_store::Store;

use super::groups::GroupPage;
use super::{Caller, api_error};

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "Role")]
pub enum RoleValue {
    /// Every operation.
    Admin,
    /// Read everything, change nothing.
    Auditor,
    /// Its own identity only.
    Member,
    /// Only `/scim/v2`.
    Scim,
}

impl From<Role> for RoleValue {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => RoleValue::Admin,
            Role::Auditor => RoleValue::Auditor,
            Role::Member => RoleValue::Member,
            Role::Scim => RoleValue::Scim,
        }
    }
}

impl From<RoleValue> for Role {
    fn from(r: RoleValue) -> Self {
        match r {
            RoleValue::Admin => Role::Admin,
            RoleValue::Auditor => Role::Auditor,
            RoleValue::Member => Role::Member,
            RoleValue::Scim => Role::Scim,
        }
    }
}

/// A person or service account.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct User {
    /// Stable id.
    pub id: ID,
    /// Login name.
    pub name: String,
    /// Name for display.
    pub display_name: String,
    /// Contact address.
    pub email: Option<String>,
    /// When the user was added.
    pub created_at: String,
    /// Whether the user is disabled (their credentials do not work).
    pub disabled: bool,
    /// When the user was disabled.
    pub disabled_at: Option<String>,
}

#[ComplexObject]
impl User {
    /// The groups the user belongs to, by name.
    async fn groups(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<String>> {
        let store = ctx.data::<Arc<Store>>()?;
        let caller = ctx.data::<Caller>()?;
        let groups = store
            .user_groups(&self.id, caller.audit.now)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(groups.into_iter().map(String::from).collect())
    }
}

impl From<warden_store::User> for User {
    fn from(u: warden_store::User) -> Self {
        User {
            id: ID(u.id),
            name: u.name.into(),
            display_name: u.display_name,
            email: u.email,
            created_at: u.created_at.to_string(),
            disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at.map(|t| t.to_string()),
        }
    }
}

/// A named set of users.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Group {
    /// Stable id.
    pub id: ID,
    /// Name.
    pub name: String,
    /// What the group is for.
    pub description: String,
    /// When the group was added.
    pub created_at: String,
    /// The groups listed with it, whose members, counts and owners are read together.
    #[graphql(skip)]
    pub page: Option<Arc<GroupPage>>,
}

#[ComplexObject]
impl Group {
    /// The members, by user name: the first `first` (1 to 10000), or all.
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<u32>,
    ) -> async_graphql::Result<Vec<String>> {
        if first.is_some_and(|n| !(1..=10_000).contains(&n)) {
            return Err(super::bad_input("first must be between 1 and 10000"));
        }
        let caller = ctx.data::<Caller>()?;
        let members = self
            .page(ctx)?
            .members(&self.id, first)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(members.into_iter().map(String::from).collect())
    }

    /// How many members it has (temporary grants not counted).
    async fn member_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let caller = ctx.data::<Caller>()?;
        self.page(ctx)?
            .member_count(&self.id)
            .await
            .map_err(|e| api_error(e, caller))
    }

    /// Who reviews its members in an `owner` access review.
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let caller = ctx.data::<Caller>()?;
        let owner = self
            .page(ctx)?
            .owner(&self.id)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(owner.map(String::from))
    }
}

impl Group {
    /// The groups listed with this one, or this one alone.
    fn page(&self, ctx: &Context<'_>) -> async_graphql::Result<Arc<GroupPage>> {
        match &self.page {
            Some(page) => Ok(page.clone()),
            None => Ok(GroupPage::new(
                ctx.data::<Arc<Store>>()?.clone(),
                vec![self.id.to_string()],
            )),
        }
    }

    /// `groups`, listed together.
    pub fn listed(store: &Arc<Store>, groups: Vec<warden_store::Group>) -> Vec<Group> {
        let page = GroupPage::new(store.clone(), groups.iter().map(|g| g.id.clone()).collect());
        groups
            .into_iter()
            .map(|g| Group {
                page: Some(page.clone()),
                ..Group::from(g)
            })
            .collect()
    }
}

impl From<warden_store::Group> for Group {
    fn from(g: warden_store::Group) -> Self {
        Group {
            id: ID(g.id),
            name: g.name.into(),
            description: g.description,
            created_at: g.created_at.to_string(),
            page: None,
        }
    }
}

/// Whether a token works now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum TokenStatus {
    /// Works.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

/// An API token. The secret is never readable after creation.
#[derive(Debug, Clone, SimpleObject)]
pub struct ApiToken {
    /// Id (the public part of the token string).
    pub id: ID,
    /// Label.
    pub name: String,
    /// What it may do.
    pub role: RoleValue,
    /// The user it acts as, if any.
    pub user: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: String,
    /// When it stops working.
    pub expires_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// Whether it works now.
    pub status: TokenStatus,
}

impl ApiToken {
    pub fn new(t: warden_store::ApiToken, now: Timestamp) -> Self {
        let status = if t.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if now >= t.expires_at {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        };
        ApiToken {
            id: ID(t.id),
            name: t.name.into(),
            role: t.role.into(),
            user: t.user.map(String::from),
            created_by: t.created_by,
            created_at: t.created_at.to_string(),
            expires_at: t.expires_at.to_string(),
            revoked_at: t.revoked_at.map(|r| r.to_string()),
            status,
        }
    }
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, SimpleObject)]
pub struct CreatedToken {
    /// The bearer token. Store it now: Warden keeps only its hash.
    pub token: String,
    /// The token's record.
    pub api_token: ApiToken,
}

/// What kind of identity is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ViewerKind {
    /// A user, through a token issued for them.
    User,
    /// A token that acts as itself.
    Token,
    /// The operator on the server host, through the admin socket.
    Operator,
}

/// The caller.
#[derive(Debug, Clone, SimpleObject)]
pub struct Viewer {
    /// What kind of identity.
    pub kind: ViewerKind,
    /// The user name, token name, or `operator`.
    pub name: String,
    /// The role in force.
    pub role: RoleValue,
    /// The token used, if any.
    pub token_id: Option<ID>,
    /// The user, when the caller is one.
    pub user: Option<User>,
}

/// An opaque cursor over name-ordered listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameCursor(pub String);

impl CursorType for NameCursor {
    type Error = &'static str;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| "invalid cursor")?;
        String::from_utf8(bytes)
            .map(NameCursor)
            .map_err(|_| "invalid cursor")
    }

    fn encode_cursor(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}
