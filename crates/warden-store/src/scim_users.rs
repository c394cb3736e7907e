//! SCIM users: the resource an identity provider manages for each person it provisions,
//! beside the Warden user (whose name, enabled state and memberships are Warden's own).
//!
//! A change is computed from the stored resource outside the transaction (PATCH is pure), then
//! written with a compare-and-swap on the resource's version, so concurrent writers cannot
//! lose each other's changes; the loser recomputes, or gets 412 when it sent `If-Match`.
//! Deactivating offboards in the same transaction, as `warden admin user disable` does.

use serde_json::{Map, Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::{Timestamp, UserName};
use warden_scim::{Filter, ScimError};

use crate::audit::Action;
use crate::scim_filter::{Bind, Resource, Where};
use crate::users::{new_id, offboard};
use crate::{AuditContext, Store, StoreError, User};

/// A provisioned person as SCIM shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    /// The SCIM id: the Warden user's id.
    pub id: String,
    /// The Warden user name it was given.
    pub name: UserName,
    /// The canonical resource, without `id`, `meta`, `active` and `groups`.
    pub document: Map<String, Value>,
    /// Whether the Warden user is enabled.
    pub active: bool,
    /// The SCIM groups the user is in.
    pub groups: Vec<ScimRef>,
    /// Bumped by every change: the ETag.
    pub version: i64,
    /// When it was provisioned.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A reference to another resource: its id and what to show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimRef {
    /// The SCIM id.
    pub id: String,
    /// Its display name.
    pub display: String,
}

/// What a create, replace or patch leaves a user as.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserChange {
    /// The canonical resource (see [`warden_scim::canonical`]), without `active`.
    pub document: Map<String, Value>,
    /// Enable or disable the user; `None` leaves it as it is.
    pub active: Option<bool>,
}

/// One page of a SCIM list.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimList<T> {
    /// How many match, over all pages.
    pub total: u64,
    /// This page.
    pub items: Vec<T>,
}

/// How many times a change is recomputed when another writer got there first.
const ATTEMPTS: usize = 5;

const COLUMNS: &str =
    "u.id, u.name, u.disabled_at, doc.document, s.version, s.created_at, s.updated_at";
/// Where a user's columns come from. Filters and counts scan `scim_users` alone.
const TABLES: &str = "scim_users s JOIN users u ON u.id = s.user_id \
     JOIN scim_user_documents doc ON doc.user_id = s.user_id";

fn scim(e: ScimError) -> StoreError {
    StoreError::Scim(e)
}

fn text(doc: &Map<String, Value>, key: &str) -> Option<String> {
    doc.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn sub_text(doc: &Map<String, Value>, key: &str, sub: &str) -> Option<String> {
    doc.get(key)
        .and_then(|v| v.get(sub))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn lower(v: Option<String>) -> Option<String> {
    v.map(|s| s.to_lowercase())
}

/// The columns a document fills: the indexed keys, the Warden display name and email.
struct Columns {
    user_name: String,
    external_id: Option<String>,
    display: Option<String>,
    given: Option<String>,
    family: Option<String>,
    formatted: Option<String>,
    emails: Vec<(String, Option<String>, bool)>,
}

impl Columns {
    fn of(doc: &Map<String, Value>) -> Result<Columns, StoreError> {
        let user_name = text(doc, "userName")
            .ok_or_else(|| scim(ScimError::value("attribute `userName` is required")))?;
        let emails = doc
            .get("emails")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|e| {
                        let value = e.get("value")?.as_str()?.to_owned();
                        let kind = e.get("type").and_then(Value::as_str).map(str::to_owned);
                        let primary = e.get("primary") == Some(&Value::Bool(true));
                        Some((value, kind, primary))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Columns {
            user_name,
            external_id: text(doc, "externalId"),
            display: text(doc, "displayName"),
            given: sub_text(doc, "name", "givenName"),
            family: sub_text(doc, "name", "familyName"),
            formatted: sub_text(doc, "name", "formatted"),
            emails,
        })
    }

    /// The Warden display name: displayName, else the formatted or composed name, else userName.
    fn display_name(&self) -> String {
        let composed = match (&self.given, &self.family) {
            (Some(g), Some(f)) => Some(format!("{g} {f}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        };
        self.display
            .clone()
            .or_else(|| self.formatted.clone())
            .or(composed)
            .unwrap_or_else(|| self.user_name.clone())
    }

    /// The Warden email: the primary one, else the first.
    fn email(&self) -> Option<String> {
        self.emails
            .iter()
            .find(|e| e.2)
            .or_else(|| self.emails.first())
            .map(|e| e.0.clone())
    }

    async fn write(&self, conn: &mut AnyConnection, user_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE scim_users SET user_name = $1, user_name_key = $2, external_id = $3, \
             display_key = $4, given_key = $5, family_key = $6, formatted_key = $7 WHERE user_id = $8",
        )
        .bind(&self.user_name)
        .bind(self.user_name.to_lowercase())
        .bind(self.external_id.as_deref())
        .bind(lower(self.display.clone()))
        .bind(lower(self.given.clone()))
        .bind(lower(self.family.clone()))
        .bind(lower(self.formatted.clone()))
        .bind(user_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| taken(e, &self.user_name))?;
        sqlx::query("DELETE FROM scim_user_emails WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        for (value, kind, primary) in &self.emails {
            sqlx::query(
                "INSERT INTO scim_user_emails (user_id, value_key, type_key, is_primary) VALUES ($1, $2, $3, $4)",
            )
            .bind(user_id)
            .bind(value.to_lowercase())
            .bind(lower(kind.clone()))
            .bind(i64::from(*primary))
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query("UPDATE users SET display_name = $1, email = $2 WHERE id = $3")
            .bind(self.display_name())
            .bind(self.email())
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

fn taken(e: sqlx::Error, user_name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => scim(ScimError::uniqueness(
            format!("userName `{user_name}` is already provisioned"),
        )),
        _ => StoreError::Database(e),
    }
}

fn from_row(row: &AnyRow) -> Result<ScimUser, StoreError> {
    let name: String = row.try_get("name")?;
    let document: String = row.try_get("document")?;
    let document = match serde_json::from_str(&document) {
        Ok(Value::Object(map)) => map,
        _ => return Err(StoreError::Corrupt("scim user document".into())),
    };
    Ok(ScimUser {
        id: row.try_get("id")?,
        name: UserName::new(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        document,
        active: row.try_get::<Option<i64>, _>("disabled_at")?.is_none(),
        groups: Vec::new(),
        version: row.try_get("version")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

pub(crate) fn not_found(kind: &str, id: &str) -> StoreError {
    scim(ScimError::not_found(format!(
        "{kind} `{}` not found",
        id.chars()
            .take(80)
            .flat_map(char::escape_debug)
            .collect::<String>()
    )))
}

/// Refuses a change whose client holds an older version (`If-Match`).
pub(crate) fn check_version(
    kind: &str,
    id: &str,
    have: i64,
    want: Option<i64>,
) -> Result<(), StoreError> {
    match want {
        Some(v) if v != have => Err(scim(ScimError::precondition(format!(
            "{kind} `{id}` has changed (version {have}, not {v}): read it again"
        )))),
        _ => Ok(()),
    }
}

impl Store {
    /// Provisions a person: a Warden user named `name` and its SCIM resource. Groups that held
    /// the user's id as a pending member (see `scim_groups`) take them in, in the same
    /// transaction; the event names them as `joined_groups`.
    pub async fn scim_create_user(
        &self,
        ctx: &AuditContext,
        name: UserName,
        change: ScimUserChange,
    ) -> Result<ScimUser, StoreError> {
        let cols = Columns::of(&change.document)?;
        let active = change.active.unwrap_or(true);
        let action = Action {
            name: Change::UserCreate.into(),
            target: format!("user:{name}"),
            details: json!({
                "via": "scim",
                "user_name": cols.user_name,
                "external_id": cols.external_id,
                "active": active,
            }),
        };
        let document = Value::Object(change.document.clone()).to_string();
        self.audited_detailed(ctx, action, async |conn| {
            let taken_by_scim = sqlx::query("SELECT 1 FROM scim_users WHERE user_name_key = $1")
            .bind(cols.user_name.to_lowercase())
            .fetch_optional(&mut *conn)
            .await?;
            if taken_by_scim.is_some() {
                return Err(scim(ScimError::uniqueness(format!(
                    "userName `{}` is already provisioned",
                    cols.user_name
                ))));
            }
            // A person the client deleted and now creates again is provisioned anew onto the
            // same Warden user; any other user of that name is not the client's to take.
            let exists = sqlx::query(
                "SELECT u.id, d.user_id AS deleted FROM users u \
                 LEFT JOIN scim_deleted_users d ON d.user_id = u.id WHERE u.name = $1",
            )
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let disabled_at = (!active).then_some(ctx.now.as_millis());
            let reprovisioned = exists
                .as_ref()
                .map(|row| row.try_get::<Option<String>, _>("deleted"))
                .transpose()?
                .flatten()
                .is_some();
            let id = match exists {
                Some(row) if reprovisioned => {
                    let id: String = row.try_get("id")?;
                    sqlx::query("DELETE FROM scim_deleted_users WHERE user_id = $1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
                        .bind(disabled_at)
                        .bind(&id)
                        .execute(&mut *conn)
                        .await?;
                    id
                }
                Some(_) => {
                    return Err(scim(ScimError::uniqueness(format!(
                        "Warden user `{name}` (from userName `{}`) already exists and was not provisioned by SCIM; an admin must resolve it",
                        cols.user_name
                    ))));
                }
                None => {
                    let id = new_id();
                    sqlx::query(
                        "INSERT INTO users (id, name, display_name, email, created_at, disabled_at) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(&id)
                    .bind(name.as_str())
                    .bind(cols.display_name())
                    .bind(cols.email())
                    .bind(ctx.now.as_millis())
                    .bind(disabled_at)
                    .execute(&mut *conn)
                    .await?;
                    id
                }
            };
            sqlx::query(
                "INSERT INTO scim_users (user_id, user_name, user_name_key, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, 1, $4, $4)",
            )
            .bind(&id)
            .bind(&cols.user_name)
            .bind(cols.user_name.to_lowercase())
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await
            .map_err(|e| taken(e, &cols.user_name))?;
            sqlx::query("INSERT INTO scim_user_documents (user_id, document) VALUES ($1, $2)")
                .bind(&id)
                .bind(&document)
                .execute(&mut *conn)
                .await?;
            cols.write(conn, &id).await?;
            // Groups pushed naming this id before the user existed take them in now.
            let (joined, groups) = crate::scim_groups::resolve_pending(conn, &id, ctx.now).await?;
            let mut details = json!({ "reprovisioned": reprovisioned });
            if let (false, Some(map)) = (joined.is_empty(), details.as_object_mut()) {
                map.insert("joined_groups".into(), joined.into());
            }
            let user = ScimUser {
                id,
                name,
                document: change.document,
                active,
                groups,
                version: 1,
                created_at: ctx.now,
                updated_at: ctx.now,
            };
            Ok((user, details))
        })
        .await
    }

    /// One provisioned user by SCIM id, with their groups; `None` when unknown or deleted.
    pub async fn scim_user(&self, id: &str) -> Result<Option<ScimUser>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM {TABLES} WHERE s.user_id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut users = vec![from_row(&row)?];
        self.fill_groups(&mut users).await?;
        Ok(users.pop())
    }

    /// Provisioned users matching `filter` (resolved against the User schema), in id order:
    /// `count` of them from the 1-based `start`, with the total.
    pub async fn scim_users(
        &self,
        filter: Option<&Filter>,
        start: u64,
        count: u64,
    ) -> Result<ScimList<ScimUser>, StoreError> {
        let mut clause = "1 = 1".to_owned();
        let mut binds = Vec::new();
        if let Some(filter) = filter {
            let w =
                Where::compile(self.location.backend(), Resource::User, filter).map_err(scim)?;
            clause = w.sql;
            binds = w.binds;
        }
        let offset = start.saturating_sub(1);
        let listing = Listing {
            narrow: "scim_users s",
            wide: TABLES,
            clause: &clause,
            binds: &binds,
            columns: COLUMNS,
            key: "s.user_id",
        };
        let (total, rows) = page(&self.pool, &listing, offset, count).await?;
        let mut users = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        self.fill_groups(&mut users).await?;
        Ok(ScimList {
            total,
            items: users,
        })
    }

    async fn fill_groups(&self, users: &mut [ScimUser]) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let marks: Vec<String> = (1..=users.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT m.user_id, sg.group_id, sg.display_name FROM group_members m \
             JOIN scim_groups sg ON sg.group_id = m.group_id WHERE m.user_id IN ({}) \
             ORDER BY sg.display_key",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for u in users.iter() {
            query = query.bind(u.id.clone());
        }
        for row in query.fetch_all(&self.pool).await? {
            let user_id: String = row.try_get("user_id")?;
            if let Some(u) = users.iter_mut().find(|u| u.id == user_id) {
                u.groups.push(ScimRef {
                    id: row.try_get("group_id")?,
                    display: row.try_get("display_name")?,
                });
            }
        }
        Ok(())
    }

    /// Replaces or patches a provisioned user: `change` computes the new state from the
    /// current one. `if_match` is the version the client last saw. Deactivation offboards
    /// (audited as `user.disable`), reactivation is `user.enable`, the rest `user.update`.
    pub async fn scim_update_user(
        &self,
        ctx: &AuditContext,
        id: &str,
        if_match: Option<i64>,
        change: impl Fn(&ScimUser) -> Result<ScimUserChange, ScimError>,
    ) -> Result<ScimUser, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(current) = self.scim_user(id).await? else {
                return self
                    .scim_refused(
                        ctx,
                        Change::UserUpdate,
                        format!("scim:user:{id}"),
                        not_found("user", id),
                    )
                    .await;
            };
            let target = format!("user:{}", current.name);
            if let Err(e) = check_version("user", id, current.version, if_match) {
                return self.scim_refused(ctx, Change::UserUpdate, target, e).await;
            }
            let next = match change(&current) {
                Ok(next) => next,
                Err(e) => {
                    return self
                        .scim_refused(ctx, Change::UserUpdate, target, scim(e))
                        .await;
                }
            };
            let cols = match Columns::of(&next.document) {
                Ok(cols) => cols,
                Err(e) => return self.scim_refused(ctx, Change::UserUpdate, target, e).await,
            };
            let active = next.active.unwrap_or(current.active);
            let changed: Vec<&String> = next
                .document
                .iter()
                .filter(|(k, v)| current.document.get(*k) != Some(v))
                .map(|(k, _)| k)
                .chain(
                    current
                        .document
                        .keys()
                        .filter(|k| !next.document.contains_key(*k)),
                )
                .collect();
            let name = match (current.active, active) {
                (true, false) => Change::UserDisable,
                (false, true) => Change::UserEnable,
                _ => Change::UserUpdate,
            };
            let action = Action {
                name: name.into(),
                target,
                details: json!({ "via": "scim", "changed": changed, "version": current.version + 1 }),
            };
            let document = Value::Object(next.document.clone()).to_string();
            let user = User {
                id: current.id.clone(),
                name: current.name.clone(),
                display_name: cols.display_name(),
                email: cols.email(),
                created_at: current.created_at,
                disabled_at: None,
            };
            let written = self
                .audited_detailed(ctx, action, async |conn| {
                    let swapped = sqlx::query(
                        "UPDATE scim_users SET version = version + 1, updated_at = $1 \
                         WHERE user_id = $2 AND version = $3",
                    )
                    .bind(ctx.now.as_millis())
                    .bind(id)
                    .bind(current.version)
                    .execute(&mut *conn)
                    .await?;
                    if swapped.rows_affected() == 0 {
                        return Err(StoreError::Raced);
                    }
                    sqlx::query("UPDATE scim_user_documents SET document = $1 WHERE user_id = $2")
                        .bind(&document)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                    cols.write(conn, id).await?;
                    let details = set_active(conn, &user, current.active, active, ctx.now).await?;
                    Ok(((), details))
                })
                .await;
            match written {
                Ok(()) => {}
                // Another writer changed it between the read and the write: compute again.
                Err(StoreError::Raced) if if_match.is_none() => continue,
                Err(StoreError::Raced) => {
                    return Err(scim(ScimError::precondition(format!(
                        "user `{id}` has changed: read it again"
                    ))));
                }
                Err(e) => return Err(e),
            }
            return self
                .scim_user(id)
                .await?
                .ok_or_else(|| not_found("user", id));
        }
        Err(StoreError::Conflict(format!(
            "user `{id}` is changing too often to update; try again"
        )))
    }

    /// Deprovisions a user: disabled and offboarded (as deactivation), out of every group,
    /// and gone from SCIM. The Warden user stays, disabled, so its history keeps its name.
    pub async fn scim_delete_user(
        &self,
        ctx: &AuditContext,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<(), StoreError> {
        let Some(current) = self.scim_user(id).await? else {
            return self
                .scim_refused(
                    ctx,
                    Change::UserDelete,
                    format!("scim:user:{id}"),
                    not_found("user", id),
                )
                .await;
        };
        let target = format!("user:{}", current.name);
        if let Err(e) = check_version("user", id, current.version, if_match) {
            return self.scim_refused(ctx, Change::UserDelete, target, e).await;
        }
        let action = Action {
            name: Change::UserDelete.into(),
            target,
            details: json!({ "via": "scim" }),
        };
        let user = User {
            id: current.id.clone(),
            name: current.name.clone(),
            display_name: String::new(),
            email: None,
            created_at: current.created_at,
            disabled_at: None,
        };
        self.audited_detailed(ctx, action, async |conn| {
            let gone = sqlx::query("DELETE FROM scim_users WHERE user_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(not_found("user", id));
            }
            for sql in [
                "DELETE FROM scim_user_documents WHERE user_id = $1",
                "DELETE FROM scim_user_emails WHERE user_id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *conn).await?;
            }
            sqlx::query("INSERT INTO scim_deleted_users (user_id, deleted_at) VALUES ($1, $2)")
                .bind(id)
                .bind(ctx.now.as_millis())
                .execute(&mut *conn)
                .await?;
            let mut details = set_active(conn, &user, current.active, false, ctx.now).await?;
            let left = sqlx::query("DELETE FROM group_members WHERE user_id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            if let Value::Object(map) = &mut details {
                map.insert("groups_left".into(), left.into());
            } else {
                details = json!({ "groups_left": left });
            }
            Ok(((), details))
        })
        .await
    }

    /// Records a refused SCIM change (a failure event naming why) and returns the refusal.
    pub(crate) async fn scim_refused<T>(
        &self,
        ctx: &AuditContext,
        name: Change,
        target: String,
        err: StoreError,
    ) -> Result<T, StoreError> {
        let action = Action {
            name: name.into(),
            target,
            details: json!({ "via": "scim" }),
        };
        self.audited(ctx, action, async |_| Err::<T, _>(err)).await
    }
}

/// Disables (offboarding) or enables the user when `after` differs from `before`; the
/// offboarding counts, for the event.
async fn set_active(
    conn: &mut AnyConnection,
    user: &User,
    before: bool,
    after: bool,
    now: Timestamp,
) -> Result<Value, StoreError> {
    if before == after {
        return Ok(Value::Null);
    }
    let disabled_at = (!after).then_some(now.as_millis());
    sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
        .bind(disabled_at)
        .bind(&user.id)
        .execute(&mut *conn)
        .await?;
    if after {
        return Ok(Value::Null);
    }
    offboard(conn, user, now).await
}

/// A SCIM list's query, in pieces.
pub(crate) struct Listing<'a> {
    /// The tables the filter and count scan.
    pub narrow: &'a str,
    /// The tables the page's rows come from.
    pub wide: &'a str,
    /// The WHERE clause and its binds.
    pub clause: &'a str,
    pub binds: &'a [Bind],
    /// The columns of a row, and the key the pages are ordered by.
    pub columns: &'a str,
    pub key: &'a str,
}

/// Matches a filter may have for a list to be read in one scan of keys.
const FEW: u64 = 2000;

/// One page of a listing, in key order, with the total count: the matching keys from the
/// narrow tables in one scan when there are at most [`FEW`], else a count and the page's keys
/// in key order; then the rows for the page's keys.
pub(crate) async fn page(
    pool: &sqlx::AnyPool,
    listing: &Listing<'_>,
    offset: u64,
    count: u64,
) -> Result<(u64, Vec<AnyRow>), StoreError> {
    let Listing {
        narrow,
        wide,
        clause,
        binds,
        columns,
        key,
    } = listing;
    let keys_of = |rows: Vec<AnyRow>| -> Result<Vec<String>, StoreError> {
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("k")?))
            .collect()
    };
    // One plain scan for the common, selective filter: every matching key when there are at
    // most FEW, sorted here (byte order, as the collations sort), so no index walk or sort
    // of the whole table is planned.
    let mut found = None;
    if offset + count <= FEW {
        let sql = format!(
            "SELECT {key} AS k FROM {narrow} WHERE {clause} LIMIT {}",
            FEW + 1
        );
        let mut all = keys_of(bound(sqlx::query(&sql), binds).fetch_all(pool).await?)?;
        if all.len() <= usize::try_from(FEW).unwrap_or(usize::MAX) {
            all.sort_unstable();
            let total = u64::try_from(all.len()).unwrap_or_default();
            let skip = usize::try_from(offset).unwrap_or(usize::MAX);
            let take = usize::try_from(count).unwrap_or(usize::MAX);
            found = Some((
                total,
                all.into_iter().skip(skip).take(take).collect::<Vec<_>>(),
            ));
        }
    }
    let (total, keys) = match found {
        Some(found) => found,
        None => {
            let sql = format!("SELECT COUNT(*) AS total FROM {narrow} WHERE {clause}");
            let total: i64 = bound(sqlx::query(&sql), binds)
                .fetch_one(pool)
                .await?
                .try_get("total")?;
            let total = u64::try_from(total).unwrap_or_default();
            if total <= offset || count == 0 {
                return Ok((total, Vec::new()));
            }
            let sql = format!(
                "SELECT {key} AS k FROM {narrow} WHERE {clause} ORDER BY {key} LIMIT {count} OFFSET {offset}"
            );
            (
                total,
                keys_of(bound(sqlx::query(&sql), binds).fetch_all(pool).await?)?,
            )
        }
    };
    if keys.is_empty() {
        return Ok((total, Vec::new()));
    }
    let marks: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {columns} FROM {wide} WHERE {key} IN ({}) ORDER BY {key}",
        marks.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for k in keys {
        query = query.bind(k);
    }
    Ok((total, query.fetch_all(pool).await?))
}

fn bound<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s.as_str()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    query
}
