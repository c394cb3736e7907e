use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{Context, ID, Object};
use warden_model::{Actor, GroupName, Role, UserName};
use warden_store::{Page, PageRequest, Store};

use super::Capability;
use super::authz::authorize;
use super::types::{ApiToken, Group, NameCursor, User, Viewer, ViewerKind};
use super::{api_error, bad_input};

/// Largest page a listing returns.
pub const MAX_PAGE: usize = 100;
/// Page size when the caller names none.
pub const DEFAULT_PAGE: usize = 50;

/// Read operations: the audit log's fields are in `audit.rs`.
#[derive(Debug, Default, async_graphql::MergedObject)]
pub struct Query(
    DirectoryQuery,
    super::audit::AuditQuery,
    super::compliance::ComplianceQuery,
    super::pki::HostQuery,
    super::sessions::SessionQuery,
    super::policy::PolicyQuery,
    super::ssh_sessions::SshSessionQuery,
    super::access::AccessQuery,
    super::reviews::ReviewQuery,
    super::vulns::VulnQuery,
    super::mesh::MeshQuery,
    super::ssh::SshQuery,
    super::break_glass::BreakGlassQuery,
);

/// Who is calling, users, groups and tokens.
#[derive(Debug, Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
    /// Who is calling.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let caller = authorize(ctx, Capability::Viewer, "viewer").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let actor = &caller.audit.actor;
        let role = actor.role().unwrap_or(Role::Member).into();
        Ok(match actor {
            Actor::User { name, token_id, .. } => {
                let user = store.user(name).await.map_err(|e| api_error(e, caller))?;
                Viewer {
                    kind: ViewerKind::User,
                    name: name.to_string(),
                    role,
                    token_id: Some(ID(token_id.clone())),
                    user: user.map(User::from),
                }
            }
            Actor::Token { token_id, name, .. } => Viewer {
                kind: ViewerKind::Token,
                name: name.to_string(),
                role,
                token_id: Some(ID(token_id.clone())),
                user: None,
            },
            Actor::Operator | Actor::Host { .. } | Actor::Anonymous | Actor::System => Viewer {
                kind: ViewerKind::Operator,
                name: actor.to_string(),
                role,
                token_id: None,
                user: None,
            },
        })
    }

    /// One user by name.
    async fn user(&self, ctx: &Context<'_>, name: String) -> async_graphql::Result<Option<User>> {
        let caller = authorize(ctx, Capability::ReadDirectory, &format!("user:{name}")).await?;
        let name = UserName::new(name).map_err(bad_input)?;
        let store = ctx.data::<Arc<Store>>()?;
        let user = store.user(&name).await.map_err(|e| api_error(e, caller))?;
        Ok(user.map(User::from))
    }

    /// Users in name order, a page at a time.
    async fn users(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> async_graphql::Result<Connection<NameCursor, User>> {
        let caller = authorize(ctx, Capability::ReadDirectory, "users").await?;
        let store = ctx.data::<Arc<Store>>()?;
        paginate(after, before, first, last, async |page| {
            let p = store.users(&page).await.map_err(|e| api_error(e, caller))?;
            Ok(map_page(p, |u| (u.name.to_string(), User::from(u))))
        })
        .await
    }

    /// One group by name.
    async fn group(&self, ctx: &Context<'_>, name: String) -> async_graphql::Result<Option<Group>> {
        let caller = authorize(ctx, Capability::ReadDirectory, &format!("group:{name}")).await?;
        let name = GroupName::new(name).map_err(bad_input)?;
        let store = ctx.data::<Arc<Store>>()?;
        let group = store.group(&name).await.map_err(|e| api_error(e, caller))?;
        Ok(group.map(Group::from))
    }

    /// Groups in name order, a page at a time.
    async fn groups(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        before: Option<String>,
        first: Option<i32>,
        last: Option<i32>,
    ) -> async_graphql::Result<Connection<NameCursor, Group>> {
        let caller = authorize(ctx, Capability::ReadDirectory, "groups").await?;
        let store = ctx.data::<Arc<Store>>()?;
        paginate(after, before, first, last, async |page| {
            let p = store
                .groups(&page)
                .await
                .map_err(|e| api_error(e, caller))?;
            let names: Vec<String> = p.items.iter().map(|g| g.name.to_string()).collect();
            let groups = Group::listed(store, p.items);
            Ok(Page {
                items: names.into_iter().zip(groups).collect(),
                has_previous: p.has_previous,
                has_next: p.has_next,
            })
        })
        .await
    }

    /// Every API token, newest first, revoked and expired ones included.
    async fn tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiToken>> {
        let caller = authorize(ctx, Capability::ReadTokens, "tokens").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let tokens = store.tokens().await.map_err(|e| api_error(e, caller))?;
        Ok(tokens
            .into_iter()
            .map(|t| ApiToken::new(t, caller.audit.now))
            .collect())
    }
}

fn map_page<T, U>(page: Page<T>, f: impl Fn(T) -> (String, U)) -> Page<(String, U)> {
    Page {
        items: page.items.into_iter().map(f).collect(),
        has_previous: page.has_previous,
        has_next: page.has_next,
    }
}

/// Relay-style pagination over a name-ordered listing.
async fn paginate<T: async_graphql::OutputType>(
    after: Option<String>,
    before: Option<String>,
    first: Option<i32>,
    last: Option<i32>,
    fetch: impl AsyncFnOnce(PageRequest) -> async_graphql::Result<Page<(String, T)>>,
) -> async_graphql::Result<Connection<NameCursor, T>> {
    let over = |n: i32| usize::try_from(n).is_ok_and(|n| n > MAX_PAGE);
    if first.is_some_and(over) || last.is_some_and(over) {
        return Err(bad_input(format!(
            "`first` and `last` may be at most {MAX_PAGE}"
        )));
    }
    query(
        after,
        before,
        first,
        last,
        async |after: Option<NameCursor>, before: Option<NameCursor>, first, last| {
            let from_end = last.is_some() && first.is_none();
            let limit = first.or(last).unwrap_or(DEFAULT_PAGE);
            let page = PageRequest {
                after: after.map(|c| c.0),
                before: before.map(|c| c.0),
                limit: u32::try_from(limit).unwrap_or(0),
                from_end,
            };
            let page = fetch(page).await?;
            let mut connection = Connection::new(page.has_previous, page.has_next);
            connection.edges.extend(
                page.items
                    .into_iter()
                    .map(|(name, node)| Edge::new(NameCursor(name), node)),
            );
            Ok::<_, async_graphql::Error>(connection)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::connection::CursorType;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = NameCursor("alice".into());
        assert_eq!(NameCursor::decode_cursor(&c.encode_cursor()).unwrap(), c);
        assert!(NameCursor::decode_cursor("***").is_err());
    }
}
