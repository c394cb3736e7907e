use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::{GroupName, Timestamp, UserName};

use crate::audit::Action;
use crate::users::{new_id, user_id};
use crate::{AuditContext, Page, PageRequest, Store, StoreError};

/// A named set of users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Stable id.
    pub id: String,
    /// Name, unique.
    pub name: GroupName,
    /// What the group is for.
    pub description: String,
    /// When the group was added.
    pub created_at: Timestamp,
}

const GROUP_COLUMNS: &str = "id, name, description, created_at";

fn group_from_row(row: &AnyRow) -> Result<Group, StoreError> {
    let name: String = row.try_get("name")?;
    Ok(Group {
        id: row.try_get("id")?,
        name: GroupName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        description: row.try_get("description")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

async fn fetch_group(conn: &mut AnyConnection, name: &GroupName) -> Result<Group, StoreError> {
    let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE name = $1");
    let row = sqlx::query(&sql)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => group_from_row(&row),
        None => Err(StoreError::NotFound {
            kind: "group",
            name: name.to_string(),
        }),
    }
}

impl Store {
    /// Adds a group.
    pub async fn create_group(
        &self,
        ctx: &AuditContext,
        name: GroupName,
        description: String,
    ) -> Result<Group, StoreError> {
        let action = Action {
            name: Change::GroupCreate.into(),
            target: format!("group:{name}"),
            details: json!({ "description": description }),
        };
        self.audited(ctx, action, async |conn| {
            let group = Group {
                id: new_id(),
                name,
                description,
                created_at: ctx.now,
            };
            sqlx::query(
                "INSERT INTO groups (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&group.id)
            .bind(group.name.as_str())
            .bind(&group.description)
            .bind(group.created_at.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::unique(e, "group", group.name.as_str()))?;
            Ok(group)
        })
        .await
    }

    /// Puts `user` in `group`.
    pub async fn add_group_member(
        &self,
        ctx: &AuditContext,
        group: &GroupName,
        user: &UserName,
    ) -> Result<Group, StoreError> {
        let action = Action {
            name: Change::GroupAddMember.into(),
            target: format!("group:{group}"),
            details: json!({ "user": user }),
        };
        self.audited(ctx, action, async |conn| {
            let g = fetch_group(conn, group).await?;
            let uid = user_id(conn, user).await?;
            let done = sqlx::query(
                "INSERT INTO group_members (group_id, user_id, added_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&g.id)
            .bind(&uid)
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "user `{user}` is already a member of group `{group}`"
                )));
            }
            Ok(g)
        })
        .await
    }

    /// Takes `user` out of `group`.
    pub async fn remove_group_member(
        &self,
        ctx: &AuditContext,
        group: &GroupName,
        user: &UserName,
    ) -> Result<Group, StoreError> {
        let action = Action {
            name: Change::GroupRemoveMember.into(),
            target: format!("group:{group}"),
            details: json!({ "user": user }),
        };
        self.audited(ctx, action, async |conn| {
            let g = fetch_group(conn, group).await?;
            let uid = user_id(conn, user).await?;
            let done =
                sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                    .bind(&g.id)
                    .bind(&uid)
                    .execute(&mut *conn)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict(format!(
                    "user `{user}` is not a member of group `{group}`"
                )));
            }
            Ok(g)
        })
        .await
    }

    /// Makes `owner` the owner of `group` (who reviews its members in an `owner` review), or
    /// clears it.
    pub async fn set_group_owner(
        &self,
        ctx: &AuditContext,
        group: &GroupName,
        owner: Option<&UserName>,
    ) -> Result<Group, StoreError> {
        let action = Action {
            name: Change::GroupSetOwner.into(),
            target: format!("group:{group}"),
            details: json!({ "owner": owner }),
        };
        self.audited(ctx, action, async |conn| {
            let g = fetch_group(conn, group).await?;
            sqlx::query("DELETE FROM group_owners WHERE group_id = $1")
                .bind(&g.id)
                .execute(&mut *conn)
                .await?;
            if let Some(owner) = owner {
                let uid = user_id(conn, owner).await?;
                sqlx::query("INSERT INTO group_owners (group_id, user_id) VALUES ($1, $2)")
                    .bind(&g.id)
                    .bind(&uid)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(g)
        })
        .await
    }

    /// A group's owner, if it has one.
    pub async fn group_owner(&self, group_id: &str) -> Result<Option<UserName>, StoreError> {
        let row = sqlx::query(
            "SELECT u.name FROM group_owners o JOIN users u ON u.id = o.user_id WHERE o.group_id = $1",
        )
        .bind(group_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let name: String = r.try_get("name")?;
            UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }

    /// One group by name.
    pub async fn group(&self, name: &GroupName) -> Result<Option<Group>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        match fetch_group(&mut conn, name).await {
            Ok(group) => Ok(Some(group)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A page of groups in name order.
    pub async fn groups(&self, page: &PageRequest) -> Result<Page<Group>, StoreError> {
        let (sql, binds) = page.sql(GROUP_COLUMNS, "groups");
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let groups = rows
            .iter()
            .map(group_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(groups))
    }

    /// The first `limit` members of a group (all with `None`), in name order.
    pub async fn group_members(
        &self,
        group_id: &str,
        limit: Option<u32>,
    ) -> Result<Vec<UserName>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name FROM group_members m JOIN users u ON u.id = m.user_id \
             WHERE m.group_id = $1 ORDER BY u.name LIMIT $2",
        )
        .bind(group_id)
        .bind(limit.map_or(i64::MAX, i64::from))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name")?;
                UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    /// How many members a group has.
    pub async fn group_member_count(&self, group_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM group_members WHERE group_id = $1",
        )
        .bind(group_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }
}
