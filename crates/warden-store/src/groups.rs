use std::collections::BTreeMap;

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::{GroupName, Timestamp, UserName};

use crate::audit::Action;
use crate::users::{new_id, user_id};
use crate::{AuditContext, Page, PageRequest, Store, StoreError, marks, rows_for_ids};

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

/// The owner of each group in `group_ids` that has one, by group id.
async fn owners(
    conn: &mut AnyConnection,
    group_ids: &[String],
) -> Result<BTreeMap<String, UserName>, StoreError> {
    let sql = |n| {
        format!(
            "SELECT o.group_id, u.name FROM group_owners o JOIN users u ON u.id = o.user_id \
             WHERE o.group_id IN ({})",
            marks(1, n)
        )
    };
    let mut out = BTreeMap::new();
    rows_for_ids(conn, group_ids, sql, |row| {
        let name = UserName::new(row.try_get::<String, _>("name")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        out.insert(row.try_get("group_id")?, name);
        Ok(())
    })
    .await?;
    Ok(out)
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
                "INSERT INTO group_members (group_id, user_id, user_name, added_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&g.id)
            .bind(&uid)
            .bind(user.as_str())
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
    /// clears it. With `expected` (the owner the caller read, `Some(None)` for none), the
    /// change is refused as stale if the owner is another by now: the check and the change are
    /// one transaction.
    pub async fn set_group_owner(
        &self,
        ctx: &AuditContext,
        group: &GroupName,
        owner: Option<&UserName>,
        expected: Option<Option<&UserName>>,
    ) -> Result<Group, StoreError> {
        let mut details = json!({ "owner": owner });
        if let (Some(expected), Some(map)) = (expected, details.as_object_mut()) {
            map.insert("expected_owner".to_owned(), json!(expected));
        }
        let action = Action {
            name: Change::GroupSetOwner.into(),
            target: format!("group:{group}"),
            details,
        };
        self.audited(ctx, action, async |conn| {
            let g = fetch_group(conn, group).await?;
            if let Some(expected) = expected {
                let now = owners(conn, std::slice::from_ref(&g.id))
                    .await?
                    .remove(&g.id);
                if now.as_ref() != expected {
                    return Err(StoreError::Stale(format!(
                        "the owner of group `{group}` changed since it was read (now {}): \
                         read it again, then decide",
                        now.map_or_else(|| "none".to_owned(), |n| format!("`{n}`"))
                    )));
                }
            }
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

    /// The first `limit` members (all with `None`) of each group in `group_ids`, in name
    /// order, by group id: one query for a page of groups. A group without members is absent.
    /// With a limit, each group's members are a range of the (group, name) index.
    pub async fn groups_members(
        &self,
        group_ids: &[String],
        limit: Option<u32>,
    ) -> Result<BTreeMap<String, Vec<UserName>>, StoreError> {
        let sql = |n: usize| match limit {
            None => format!(
                "SELECT group_id, user_name FROM group_members WHERE group_id IN ({}) \
                 ORDER BY group_id, user_name",
                marks(1, n)
            ),
            // The order of a union's rows is only what its ORDER BY says; sorting the
            // page's few rows again costs nothing.
            Some(limit) => {
                let ranges: Vec<String> = (1..=n)
                    .map(|i| {
                        format!(
                            "SELECT * FROM (SELECT group_id, user_name FROM group_members \
                             WHERE group_id = ${i} ORDER BY user_name LIMIT {limit}) g{i}"
                        )
                    })
                    .collect();
                format!(
                    "{} ORDER BY group_id, user_name",
                    ranges.join(" UNION ALL ")
                )
            }
        };
        let mut out: BTreeMap<String, Vec<UserName>> = BTreeMap::new();
        let mut conn = self.pool.acquire().await?;
        rows_for_ids(&mut conn, group_ids, sql, |row| {
            let name = UserName::new(row.try_get::<String, _>("user_name")?)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.entry(row.try_get("group_id")?).or_default().push(name);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// How many members each group in `group_ids` has, by group id; a group without members
    /// is absent.
    pub async fn groups_member_counts(
        &self,
        group_ids: &[String],
    ) -> Result<BTreeMap<String, i64>, StoreError> {
        let sql = |n| {
            format!(
                "SELECT group_id, CAST(COUNT(*) AS BIGINT) AS n FROM group_members \
                 WHERE group_id IN ({}) GROUP BY group_id",
                marks(1, n)
            )
        };
        let mut out = BTreeMap::new();
        let mut conn = self.pool.acquire().await?;
        rows_for_ids(&mut conn, group_ids, sql, |row| {
            out.insert(row.try_get("group_id")?, row.try_get("n")?);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// The owner of each group in `group_ids` that has one, by group id.
    pub async fn groups_owners(
        &self,
        group_ids: &[String],
    ) -> Result<BTreeMap<String, UserName>, StoreError> {
        owners(&mut *self.pool.acquire().await?, group_ids).await
    }
}
