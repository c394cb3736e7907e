//! SCIM groups: each is a Warden group (named from its displayName) plus the SCIM resource.
//! Membership is Warden's `group_members`, so a PATCH that adds or removes members changes
//! access at once, and the change feed tells every proxy. A group pushed under the name of an
//! existing Warden group that no SCIM client manages is adopted only when the caller says it
//! may be (the operator lists it in `scim.adopt_groups`): that is how an identity provider
//! takes over the membership of groups the policy already names, and why a SCIM token cannot
//! take over `admins` by pushing a group of that name. Deleting an adopted group releases it:
//! the group and its members from outside SCIM stay.

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::{GroupName, Timestamp};
use warden_scim::{Filter, ScimError};

use crate::audit::Action;
use crate::scim_filter::{Resource, Where};
use crate::scim_users::{Listing, check_version, not_found, page};
use crate::users::new_id;
use crate::{AuditContext, ScimList, ScimRef, Store, StoreError};

/// A provisioned group as SCIM shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimGroup {
    /// The SCIM id: the Warden group's id.
    pub id: String,
    /// The Warden group's name.
    pub name: GroupName,
    /// The displayName the client gave it.
    pub display_name: String,
    /// The client's own id for it.
    pub external_id: Option<String>,
    /// Its members, when asked for.
    pub members: Vec<ScimRef>,
    /// Bumped by every change: the ETag.
    pub version: i64,
    /// When it was provisioned.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// What a create, replace or patch leaves a group as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupChange {
    /// Display name.
    pub display_name: String,
    /// The client's id for it.
    pub external_id: Option<String>,
    /// Member user ids, complete; `None` leaves members as they are.
    pub members: Option<Vec<String>>,
}

const COLUMNS: &str =
    "g.id, g.name, sg.display_name, sg.external_id, sg.version, sg.created_at, sg.updated_at";

fn from_row(row: &AnyRow) -> Result<ScimGroup, StoreError> {
    let name: String = row.try_get("name")?;
    Ok(ScimGroup {
        id: row.try_get("id")?,
        name: GroupName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        display_name: row.try_get("display_name")?,
        external_id: row.try_get("external_id")?,
        members: Vec::new(),
        version: row.try_get("version")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

fn taken(e: sqlx::Error, display: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Scim(ScimError::uniqueness(format!(
                "group displayName `{display}` is already provisioned"
            )))
        }
        _ => StoreError::Database(e),
    }
}

/// The names of `ids`, checking each is a provisioned, undeleted user.
async fn member_names(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let row = sqlx::query(
            "SELECT u.name FROM users u JOIN scim_users s ON s.user_id = u.id \
             WHERE u.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::Scim(ScimError::value(format!(
                "member `{}` is not a provisioned user",
                id.chars()
                    .take(80)
                    .flat_map(char::escape_debug)
                    .collect::<String>()
            ))));
        };
        out.push((id.clone(), row.try_get("name")?));
    }
    Ok(out)
}

/// Sets the group's members to `ids`; returns the names added and removed.
async fn set_members(
    conn: &mut AnyConnection,
    group_id: &str,
    ids: &[String],
    now: Timestamp,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let wanted = member_names(conn, ids).await?;
    let rows = sqlx::query(
        "SELECT m.user_id, u.name FROM group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = $1",
    )
    .bind(group_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut have = Vec::with_capacity(rows.len());
    for row in &rows {
        have.push((
            row.try_get::<String, _>("user_id")?,
            row.try_get::<String, _>("name")?,
        ));
    }
    let mut added = Vec::new();
    for (id, name) in &wanted {
        if !have.iter().any(|(h, _)| h == id) {
            sqlx::query(
                "INSERT INTO group_members (group_id, user_id, added_at) VALUES ($1, $2, $3)",
            )
            .bind(group_id)
            .bind(id)
            .bind(now.as_millis())
            .execute(&mut *conn)
            .await?;
            added.push(name.clone());
        }
    }
    let mut removed = Vec::new();
    for (id, name) in &have {
        if !wanted.iter().any(|(w, _)| w == id) {
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                .bind(group_id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            removed.push(name.clone());
        }
    }
    added.sort();
    removed.sort();
    Ok((added, removed))
}

impl Store {
    /// Provisions a group named `name`; when `adoptable`, an existing Warden group of that name
    /// that no SCIM client manages yet is adopted, otherwise such a group refuses the create.
    pub async fn scim_create_group(
        &self,
        ctx: &AuditContext,
        name: GroupName,
        change: ScimGroupChange,
        adoptable: bool,
    ) -> Result<ScimGroup, StoreError> {
        let action = Action {
            name: "group.create",
            target: format!("group:{name}"),
            details: json!({
                "via": "scim",
                "display_name": change.display_name,
                "external_id": change.external_id,
            }),
        };
        let members = change.members.clone().unwrap_or_default();
        self.audited_detailed(ctx, action, async |conn| {
            let existing = sqlx::query(
                "SELECT g.id, sg.group_id FROM groups g LEFT JOIN scim_groups sg ON sg.group_id = g.id WHERE g.name = $1",
            )
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let (id, adopted) = match existing {
                Some(row) if row.try_get::<Option<String>, _>("group_id")?.is_some() => {
                    return Err(StoreError::Scim(ScimError::uniqueness(format!(
                        "group `{name}` is already provisioned"
                    ))));
                }
                Some(_) if !adoptable => {
                    return Err(StoreError::Scim(ScimError::uniqueness(format!(
                        "group `{name}` already exists in Warden and is not adoptable: an operator may list it in scim.adopt_groups"
                    ))));
                }
                Some(row) => (row.try_get::<String, _>("id")?, true),
                None => {
                    let id = new_id();
                    sqlx::query(
                        "INSERT INTO groups (id, name, description, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&id)
                    .bind(name.as_str())
                    .bind(format!("provisioned by SCIM as `{}`", change.display_name))
                    .bind(ctx.now.as_millis())
                    .execute(&mut *conn)
                    .await?;
                    (id, false)
                }
            };
            sqlx::query(
                "INSERT INTO scim_groups (group_id, display_name, display_key, external_id, version, created_at, updated_at, adopted) \
                 VALUES ($1, $2, $3, $4, 1, $5, $5, $6)",
            )
            .bind(&id)
            .bind(&change.display_name)
            .bind(change.display_name.to_lowercase())
            .bind(change.external_id.as_deref())
            .bind(ctx.now.as_millis())
            .bind(i64::from(adopted))
            .execute(&mut *conn)
            .await
            .map_err(|e| taken(e, &change.display_name))?;
            let (added, removed) = set_members(conn, &id, &members, ctx.now).await?;
            let group = ScimGroup {
                id,
                name,
                display_name: change.display_name,
                external_id: change.external_id,
                members: Vec::new(),
                version: 1,
                created_at: ctx.now,
                updated_at: ctx.now,
            };
            let details = json!({ "adopted": adopted, "added": added, "removed": removed });
            Ok((group, details))
        })
        .await
    }

    /// One provisioned group by SCIM id, with its members when `members` is set.
    pub async fn scim_group(
        &self,
        id: &str,
        members: bool,
    ) -> Result<Option<ScimGroup>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM groups g JOIN scim_groups sg ON sg.group_id = g.id WHERE g.id = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut groups = vec![from_row(&row)?];
        if members {
            self.fill_members(&mut groups).await?;
        }
        Ok(groups.pop())
    }

    /// Provisioned groups matching `filter`, in id order, `count` from the 1-based `start`.
    pub async fn scim_groups(
        &self,
        filter: Option<&Filter>,
        start: u64,
        count: u64,
        members: bool,
    ) -> Result<ScimList<ScimGroup>, StoreError> {
        let mut clause = "1 = 1".to_owned();
        let mut binds = Vec::new();
        if let Some(filter) = filter {
            let w = Where::compile(self.location.backend(), Resource::Group, filter)?;
            clause = w.sql;
            binds = w.binds;
        }
        let tables = "groups g JOIN scim_groups sg ON sg.group_id = g.id";
        let listing = Listing {
            narrow: tables,
            wide: tables,
            clause: &clause,
            binds: &binds,
            columns: COLUMNS,
            key: "sg.group_id",
        };
        let offset = start.saturating_sub(1);
        let (total, rows) = page(&self.pool, &listing, offset, count).await?;
        let mut groups = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        if members {
            self.fill_members(&mut groups).await?;
        }
        Ok(ScimList {
            total,
            items: groups,
        })
    }

    async fn fill_members(&self, groups: &mut [ScimGroup]) -> Result<(), StoreError> {
        for g in groups.iter_mut() {
            let rows = sqlx::query(
                "SELECT u.id, u.display_name FROM group_members m JOIN users u ON u.id = m.user_id \
                 JOIN scim_users s ON s.user_id = u.id WHERE m.group_id = $1 ORDER BY u.id",
            )
            .bind(&g.id)
            .fetch_all(&self.pool)
            .await?;
            g.members = rows
                .iter()
                .map(|row| {
                    Ok(ScimRef {
                        id: row.try_get("id")?,
                        display: row.try_get("display_name")?,
                    })
                })
                .collect::<Result<_, StoreError>>()?;
        }
        Ok(())
    }

    /// Replaces or patches a provisioned group: `change` computes the new state from the
    /// current one (members included). Audited as `group.update` with the members added and
    /// removed.
    pub async fn scim_update_group(
        &self,
        ctx: &AuditContext,
        id: &str,
        if_match: Option<i64>,
        change: impl Fn(&ScimGroup) -> Result<ScimGroupChange, ScimError>,
    ) -> Result<ScimGroup, StoreError> {
        for _ in 0..5 {
            let Some(current) = self.scim_group(id, true).await? else {
                return self
                    .scim_refused(
                        ctx,
                        "group.update",
                        format!("scim:group:{id}"),
                        not_found("group", id),
                    )
                    .await;
            };
            let target = format!("group:{}", current.name);
            if let Err(e) = check_version("group", id, current.version, if_match) {
                return self.scim_refused(ctx, "group.update", target, e).await;
            }
            let next = match change(&current) {
                Ok(next) => next,
                Err(e) => {
                    return self
                        .scim_refused(ctx, "group.update", target, e.into())
                        .await;
                }
            };
            let action = Action {
                name: "group.update",
                target,
                details: json!({
                    "via": "scim",
                    "display_name": next.display_name,
                    "external_id": next.external_id,
                    "version": current.version + 1,
                }),
            };
            let written = self
                .audited_detailed(ctx, action, async |conn| {
                    let swapped = sqlx::query(
                        "UPDATE scim_groups SET display_name = $1, display_key = $2, external_id = $3, \
                         version = version + 1, updated_at = $4 WHERE group_id = $5 AND version = $6",
                    )
                    .bind(&next.display_name)
                    .bind(next.display_name.to_lowercase())
                    .bind(next.external_id.as_deref())
                    .bind(ctx.now.as_millis())
                    .bind(id)
                    .bind(current.version)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| taken(e, &next.display_name))?;
                    if swapped.rows_affected() == 0 {
                        return Err(StoreError::Raced);
                    }
                    let (added, removed) = match &next.members {
                        Some(ids) => set_members(conn, id, ids, ctx.now).await?,
                        None => (Vec::new(), Vec::new()),
                    };
                    Ok(((), json!({ "added": added, "removed": removed })))
                })
                .await;
            match written {
                Ok(()) => {}
                Err(StoreError::Raced) if if_match.is_none() => continue,
                Err(StoreError::Raced) => {
                    return Err(StoreError::Scim(ScimError::precondition(format!(
                        "group `{id}` has changed: read it again"
                    ))));
                }
                Err(e) => return Err(e),
            }
            return self
                .scim_group(id, true)
                .await?
                .ok_or_else(|| not_found("group", id));
        }
        Err(StoreError::Conflict(format!(
            "group `{id}` is changing too often to update; try again"
        )))
    }

    /// Deletes a provisioned group and its memberships. Its history stays in the audit log.
    pub async fn scim_delete_group(
        &self,
        ctx: &AuditContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<(), StoreError> {
        let Some(current) = self.scim_group(id, true).await? else {
            return self
                .scim_refused(
                    ctx,
                    "group.delete",
                    format!("scim:group:{id}"),
                    not_found("group", id),
                )
                .await;
        };
        let target = format!("group:{}", current.name);
        if let Err(e) = check_version("group", id, current.version, if_match) {
            return self.scim_refused(ctx, "group.delete", target, e).await;
        }
        let members: Vec<String> = current.members.iter().map(|m| m.display.clone()).collect();
        let adopted: i64 =
            sqlx::query_scalar("SELECT adopted FROM scim_groups WHERE group_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0);
        let action = Action {
            name: if adopted != 0 {
                "group.release"
            } else {
                "group.delete"
            },
            target,
            details: json!({ "via": "scim", "display_name": current.display_name, "members": members.len() }),
        };
        self.audited(ctx, action, async |conn| {
            if adopted != 0 {
                // The group was Warden's before SCIM took it over: SCIM lets go of it and of the
                // people it provisioned into it; the group and everyone else stay.
                sqlx::query(
                    "DELETE FROM group_members WHERE group_id = $1 \
                     AND user_id IN (SELECT user_id FROM scim_users)",
                )
                .bind(id)
                .execute(&mut *conn)
                .await?;
                let gone = sqlx::query("DELETE FROM scim_groups WHERE group_id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                if gone.rows_affected() == 0 {
                    return Err(not_found("group", id));
                }
                return Ok(());
            }
            let gone = sqlx::query("DELETE FROM groups WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(not_found("group", id));
            }
            Ok(())
        })
        .await
    }
}
