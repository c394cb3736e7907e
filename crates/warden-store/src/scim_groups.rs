//! SCIM groups: each is a Warden group (named from its displayName) plus the SCIM resource.
//! Membership is Warden's `group_members`, so a PATCH that adds or removes members changes
//! access at once, and the change feed tells every proxy. A group pushed under the name of an
//! existing Warden group that no SCIM client manages is adopted only when the caller says it
//! may be (the operator lists it in `scim.adopt_groups`): that is how an identity provider
//! takes over the membership of groups the policy already names, and why a SCIM token cannot
//! take over `admins` by pushing a group of that name. Deleting an adopted group releases it:
//! the group and its members from outside SCIM stay.
//!
//! A member is named by the SCIM `id` Warden gave the user (RFC 7643 §4.2 `members.value`;
//! never `externalId` or `userName`). A value shaped like the ids Warden issues (32 lowercase
//! hex digits) that names no provisioned user yet — a user deleted and not yet created again,
//! groups pushed before their users, or from an earlier Warden — is held in
//! `scim_pending_members` rather than refusing the change: identity providers push groups and
//! users in any order. A held member is no member: it grants nothing, and no response, filter
//! or listing shows it (`GET /Groups/{id}` lists real members only). When a user with that id
//! is provisioned, the transaction that provisions them makes them a member of every group
//! that held them, bumps those groups' versions, and names the groups in the `user.create`
//! event (`joined_groups`). A held value leaves like a member: removed by a PATCH, left out
//! of a replacement, or with the group. At most [`MAX_PENDING_MEMBERS`] are held per group.
//! A value of any other shape, the id of a Warden user no SCIM client manages, or a group's
//! id is still refused.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::{GroupName, Timestamp};
use warden_scim::{Filter, ScimError};

use crate::audit::Action;
use crate::audit::Name;
use crate::scim_filter::{Resource, Where};
use crate::scim_users::{Listing, check_version, not_found, page};
use crate::users::new_id;
use crate::{AuditContext, CHUNK, ScimList, ScimRef, Store, StoreError, marks, rows_for_ids};

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
    /// Member ids held until a user with that id is provisioned: filled only for the
    /// `change` of [`Store::scim_update_group`] (a PATCH applies to them too), and never
    /// shown as members.
    pub pending: Vec<String>,
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
        pending: Vec::new(),
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

/// The most member ids one group may hold for users not provisioned yet.
pub(crate) const MAX_PENDING_MEMBERS: usize = 10_000;

/// Whether `id` has the shape of the ids Warden issues (a UUID as 32 lowercase hex digits):
/// only such a value can name a user who is not provisioned yet.
fn id_shaped(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn shown(id: &str) -> String {
    id.chars()
        .take(80)
        .flat_map(char::escape_debug)
        .collect::<String>()
}

/// What a group's member ids name: provisioned users (id and Warden name), and ids held for
/// users not provisioned yet.
#[derive(Debug, Default)]
struct Wanted {
    users: Vec<(String, String)>,
    pending: BTreeSet<String>,
}

/// Sorts `ids` into provisioned users and ids to hold, refusing the first that can name
/// neither (see the module docs).
async fn wanted(conn: &mut AnyConnection, ids: &[String]) -> Result<Wanted, StoreError> {
    // id → (name, provisioned, deleted by a SCIM client)
    let mut users: BTreeMap<String, (String, bool, bool)> = BTreeMap::new();
    let sql = |n| {
        format!(
            "SELECT u.id, u.name, s.user_id AS provisioned, d.user_id AS deleted FROM users u \
             LEFT JOIN scim_users s ON s.user_id = u.id \
             LEFT JOIN scim_deleted_users d ON d.user_id = u.id WHERE u.id IN ({})",
            marks(1, n)
        )
    };
    rows_for_ids(&mut *conn, ids, sql, |row| {
        let provisioned = row.try_get::<Option<String>, _>("provisioned")?.is_some();
        let deleted = row.try_get::<Option<String>, _>("deleted")?.is_some();
        users.insert(
            row.try_get("id")?,
            (row.try_get("name")?, provisioned, deleted),
        );
        Ok(())
    })
    .await?;
    let unknown: Vec<&String> = ids
        .iter()
        .filter(|id| id_shaped(id) && !users.contains_key(*id))
        .collect();
    let mut groups = BTreeSet::new();
    let sql = |n| format!("SELECT id FROM groups WHERE id IN ({})", marks(1, n));
    rows_for_ids(&mut *conn, &unknown, sql, |row| {
        groups.insert(row.try_get::<String, _>("id")?);
        Ok(())
    })
    .await?;
    let mut out = Wanted::default();
    let mut seen = BTreeSet::new();
    for id in ids.iter().filter(|id| seen.insert(id.as_str())) {
        match users.get(id) {
            Some((name, true, _)) => out.users.push((id.clone(), name.clone())),
            // Deleted by a SCIM client: held until the client creates the person again.
            Some((_, false, true)) => {
                out.pending.insert(id.clone());
            }
            None if groups.contains(id) => {
                return Err(StoreError::Scim(ScimError::value(format!(
                    "member `{}` is a group: nested groups are not supported",
                    shown(id)
                ))));
            }
            None if id_shaped(id) => {
                out.pending.insert(id.clone());
            }
            Some(_) | None => {
                return Err(StoreError::Scim(ScimError::value(format!(
                    "member `{}` is not a provisioned user",
                    shown(id)
                ))));
            }
        }
    }
    if out.pending.len() > MAX_PENDING_MEMBERS {
        return Err(StoreError::Scim(ScimError::value(format!(
            "a group may hold at most {MAX_PENDING_MEMBERS} members that are not provisioned users yet, not {}",
            out.pending.len()
        ))));
    }
    Ok(out)
}

/// What setting a group's members changed, for its event: Warden names of the members added
/// and removed, and the held ids added and dropped.
#[derive(Debug, Default)]
struct Membership {
    added: Vec<String>,
    removed: Vec<String>,
    pending_added: Vec<String>,
    pending_removed: Vec<String>,
}

impl Membership {
    fn details(&self) -> serde_json::Value {
        json!({
            "added": self.added,
            "removed": self.removed,
            "pending_added": self.pending_added,
            "pending_removed": self.pending_removed,
        })
    }
}

/// Sets the group's members to `ids`: provisioned users become members, ids of users not
/// provisioned yet are held.
async fn set_members(
    conn: &mut AnyConnection,
    group_id: &str,
    ids: &[String],
    now: Timestamp,
) -> Result<Membership, StoreError> {
    let wanted = wanted(conn, ids).await?;
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
    let members: BTreeSet<&str> = have.iter().map(|(id, _)| id.as_str()).collect();
    let keep: BTreeSet<&str> = wanted.users.iter().map(|(id, _)| id.as_str()).collect();
    let mut out = Membership::default();
    for (id, name) in &wanted.users {
        if !members.contains(id.as_str()) {
            sqlx::query(
                "INSERT INTO group_members (group_id, user_id, user_name, added_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(group_id)
            .bind(id)
            .bind(name)
            .bind(now.as_millis())
            .execute(&mut *conn)
            .await?;
            out.added.push(name.clone());
        }
    }
    for (id, name) in &have {
        if !keep.contains(id.as_str()) {
            sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
                .bind(group_id)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            out.removed.push(name.clone());
        }
    }
    out.added.sort();
    out.removed.sort();
    let held: BTreeSet<String> =
        sqlx::query_scalar("SELECT member_id FROM scim_pending_members WHERE group_id = $1")
            .bind(group_id)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    out.pending_added = wanted.pending.difference(&held).cloned().collect();
    out.pending_removed = held.difference(&wanted.pending).cloned().collect();
    for chunk in out.pending_added.chunks(CHUNK) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO scim_pending_members (group_id, member_id, held_at) VALUES {}",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(group_id).bind(now.as_millis());
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut *conn).await?;
    }
    for chunk in out.pending_removed.chunks(CHUNK) {
        let sql = format!(
            "DELETE FROM scim_pending_members WHERE group_id = $1 AND member_id IN ({})",
            marks(2, chunk.len())
        );
        let mut query = sqlx::query(&sql).bind(group_id);
        for id in chunk {
            query = query.bind(id);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(out)
}

/// Makes the user `user_id`, just provisioned, a member of every group that held their id,
/// bumping those groups' versions (their members changed). Returns the groups' Warden names,
/// sorted, for the provisioning's event, and the groups as the user's `groups` show them.
pub(crate) async fn resolve_pending(
    conn: &mut AnyConnection,
    user_id: &str,
    now: Timestamp,
) -> Result<(Vec<String>, Vec<ScimRef>), StoreError> {
    let rows = sqlx::query(
        "SELECT p.group_id, g.name, sg.display_name, sg.display_key FROM scim_pending_members p \
         JOIN groups g ON g.id = p.group_id JOIN scim_groups sg ON sg.group_id = p.group_id \
         WHERE p.member_id = $1",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut names = Vec::with_capacity(rows.len());
    let mut groups = Vec::with_capacity(rows.len());
    for row in &rows {
        let group_id: String = row.try_get("group_id")?;
        sqlx::query(
            "INSERT INTO group_members (group_id, user_id, user_name, added_at) \
             SELECT $1, id, name, $3 FROM users WHERE id = $2 ON CONFLICT DO NOTHING",
        )
        .bind(&group_id)
        .bind(user_id)
        .bind(now.as_millis())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE scim_groups SET version = version + 1, updated_at = $1 WHERE group_id = $2",
        )
        .bind(now.as_millis())
        .bind(&group_id)
        .execute(&mut *conn)
        .await?;
        names.push(row.try_get::<String, _>("name")?);
        let key: String = row.try_get("display_key")?;
        let group = ScimRef {
            id: group_id,
            display: row.try_get("display_name")?,
        };
        groups.push((key, group));
    }
    if !rows.is_empty() {
        sqlx::query("DELETE FROM scim_pending_members WHERE member_id = $1")
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
    }
    names.sort();
    // As `groups` is read back: by display name, lowercased.
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((names, groups.into_iter().map(|(_, g)| g).collect()))
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
            name: Change::GroupCreate.into(),
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
            let membership = set_members(conn, &id, &members, ctx.now).await?;
            let group = ScimGroup {
                id,
                name,
                display_name: change.display_name,
                external_id: change.external_id,
                members: Vec::new(),
                pending: Vec::new(),
                version: 1,
                created_at: ctx.now,
                updated_at: ctx.now,
            };
            let mut details = membership.details();
            if let Some(map) = details.as_object_mut() {
                map.insert("adopted".into(), adopted.into());
            }
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
    /// current one (members and held members included). Audited as `group.update` with the
    /// members added and removed and the held ids added and removed.
    pub async fn scim_update_group(
        &self,
        ctx: &AuditContext,
        id: &str,
        if_match: Option<i64>,
        change: impl Fn(&ScimGroup) -> Result<ScimGroupChange, ScimError>,
    ) -> Result<ScimGroup, StoreError> {
        for _ in 0..5 {
            let Some(mut current) = self.scim_group(id, true).await? else {
                return self
                    .scim_refused(
                        ctx,
                        Change::GroupUpdate,
                        format!("scim:group:{id}"),
                        not_found("group", id),
                    )
                    .await;
            };
            current.pending = sqlx::query_scalar(
                "SELECT member_id FROM scim_pending_members WHERE group_id = $1 ORDER BY member_id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            let target = format!("group:{}", current.name);
            if let Err(e) = check_version("group", id, current.version, if_match) {
                return self.scim_refused(ctx, Change::GroupUpdate, target, e).await;
            }
            let next = match change(&current) {
                Ok(next) => next,
                Err(e) => {
                    return self
                        .scim_refused(ctx, Change::GroupUpdate, target, e.into())
                        .await;
                }
            };
            let action = Action {
                name: Change::GroupUpdate.into(),
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
                    let membership = match &next.members {
                        Some(ids) => set_members(conn, id, ids, ctx.now).await?,
                        None => Membership::default(),
                    };
                    Ok(((), membership.details()))
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

    /// Deletes a provisioned group, its memberships and its held members (their count is
    /// `pending_removed` in the event). Its history stays in the audit log.
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
                    Change::GroupDelete,
                    format!("scim:group:{id}"),
                    not_found("group", id),
                )
                .await;
        };
        let target = format!("group:{}", current.name);
        if let Err(e) = check_version("group", id, current.version, if_match) {
            return self.scim_refused(ctx, Change::GroupDelete, target, e).await;
        }
        let members: Vec<String> = current.members.iter().map(|m| m.display.clone()).collect();
        let adopted: i64 =
            sqlx::query_scalar("SELECT adopted FROM scim_groups WHERE group_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0);
        let action = Action {
            name: Name::Change(if adopted != 0 {
                Change::GroupRelease
            } else {
                Change::GroupDelete
            }),
            target,
            details: json!({ "via": "scim", "display_name": current.display_name, "members": members.len() }),
        };
        self.audited_detailed(ctx, action, async |conn| {
            // Held members go with the group (the foreign key would take them too).
            let held = sqlx::query("DELETE FROM scim_pending_members WHERE group_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            let details = json!({ "pending_removed": held });
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
                return Ok(((), details));
            }
            let gone = sqlx::query("DELETE FROM groups WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(not_found("group", id));
            }
            Ok(((), details))
        })
        .await
    }
}
