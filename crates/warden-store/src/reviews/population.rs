//! Who holds what a campaign covers, frozen at its start, and who reviews each holding.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};
use warden_model::{Role, Timestamp};

use super::{ReviewScope, ReviewerRule};
use crate::StoreError;

/// One holding of a group or one live token, as the campaign freezes it.
pub(super) struct Holding {
    /// The owner's user id, for their manager.
    pub(super) user_id: Option<String>,
    pub(super) subject: String,
    pub(super) entitlement: String,
    pub(super) source: &'static str,
    /// The person whose access it is.
    pub(super) owner: Option<String>,
    pub(super) grant_id: Option<String>,
    pub(super) token_id: Option<String>,
    pub(super) granted_at: i64,
    pub(super) granted_by: Option<String>,
    pub(super) granted_why: Option<String>,
    pub(super) last_used_at: Option<i64>,
}

impl Holding {
    pub(super) fn line(&self, reviewer: &str) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            self.subject,
            self.entitlement,
            self.source,
            self.granted_at,
            self.granted_by.as_deref().unwrap_or("-"),
            reviewer
        )
    }
}

/// What a scope covers now: its groups' holdings, or its live tokens.
pub(super) async fn population(
    conn: &mut AnyConnection,
    scope: &ReviewScope,
    now: Timestamp,
) -> Result<Vec<Holding>, StoreError> {
    match scope {
        ReviewScope::AllGroups | ReviewScope::Groups(_) => group_population(conn, scope, now).await,
        ReviewScope::AllTokens => token_population(conn, &Role::ALL, now).await,
        ReviewScope::Tokens(roles) => token_population(conn, roles, now).await,
    }
}

/// The live API tokens of `roles`, in role then name order: each with the person it acts as
/// (else who made it) as its owner. Tokens `warden login` issued are a person's sign-in, not a
/// standing credential, and are left out.
async fn token_population(
    conn: &mut AnyConnection,
    roles: &[Role],
    now: Timestamp,
) -> Result<Vec<Holding>, StoreError> {
    let rows = sqlx::query(
        "SELECT t.id, t.name, t.role, t.created_by, t.created_at, t.expires_at, u.id AS user_id, \
         u.name AS user_name FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id \
         WHERE t.revoked_at IS NULL AND t.expires_at > $1 AND t.passkey = 0 ORDER BY t.role, t.name",
    )
    .bind(now.as_millis())
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let role: String = row.try_get("role")?;
        if !roles.iter().any(|r| r.as_str() == role) {
            continue;
        }
        let created_by: String = row.try_get("created_by")?;
        let user_name: Option<String> = row.try_get("user_name")?;
        let (owner, user_id) = match &user_name {
            Some(name) => (Some(name.clone()), row.try_get("user_id")?),
            None => match created_by.strip_prefix("user:") {
                Some(maker) => {
                    let id: Option<String> =
                        sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
                            .bind(maker)
                            .fetch_optional(&mut *conn)
                            .await?;
                    (Some(maker.to_owned()), id)
                }
                None => (None, None),
            },
        };
        let expires = Timestamp::from_millis(row.try_get("expires_at")?).rfc3339_millis();
        let why = match &user_name {
            Some(name) => format!("acts as `{name}`; expires {expires}"),
            None => format!("acts as itself; expires {expires}"),
        };
        out.push(Holding {
            user_id,
            subject: row.try_get("name")?,
            entitlement: format!("role:{role}"),
            source: "token",
            owner,
            grant_id: None,
            token_id: Some(row.try_get("id")?),
            granted_at: row.try_get("created_at")?,
            granted_by: Some(created_by),
            granted_why: Some(why),
            // Warden does not record each use of a token.
            last_used_at: None,
        });
    }
    Ok(out)
}

/// Everyone holding a group in scope now: members and live grants, in group then user order.
async fn group_population(
    conn: &mut AnyConnection,
    scope: &ReviewScope,
    now: Timestamp,
) -> Result<Vec<Holding>, StoreError> {
    let rows = sqlx::query(
        "SELECT u.id AS user_id, u.name AS subject, g.name AS entitlement, 'member' AS source, \
         NULL AS grant_id, m.added_at AS granted_at, NULL AS granted_by, NULL AS granted_why \
         FROM group_members m JOIN users u ON u.id = m.user_id JOIN groups g ON g.id = m.group_id \
         UNION ALL \
         SELECT u.id, u.name, g.name, 'grant', gr.id, gr.starts_at, gr.granted_by, r.reason \
         FROM grants gr JOIN users u ON u.id = gr.user_id JOIN groups g ON g.id = gr.group_id \
         LEFT JOIN access_requests r ON r.id = gr.request_id \
         WHERE gr.ended_at IS NULL AND gr.expires_at > $1 \
         ORDER BY 3, 2, 4",
    )
    .bind(now.as_millis())
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    let mut changes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut last_used: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for row in rows {
        let entitlement: String = row.try_get("entitlement")?;
        if let ReviewScope::Groups(names) = scope
            && !names.contains(&entitlement)
        {
            continue;
        }
        let subject: String = row.try_get("subject")?;
        let source = if row.try_get::<String, _>("source")? == "grant" {
            "grant"
        } else {
            "member"
        };
        let mut granted_by: Option<String> = row.try_get("granted_by")?;
        let mut granted_why: Option<String> = row.try_get("granted_why")?;
        if source == "member" {
            // Who put them there: the latest membership change naming them, from the log
            // (read once per group).
            if !changes.contains_key(&entitlement) {
                let rows = sqlx::query(
                    "SELECT actor, details FROM audit_log WHERE target = $1 AND outcome = 'success' \
                     AND action IN ('group.add_member', 'group.create', 'group.update') \
                     ORDER BY seq DESC LIMIT 200",
                )
                .bind(format!("group:{entitlement}"))
                .fetch_all(&mut *conn)
                .await?;
                let mut events = Vec::with_capacity(rows.len());
                for r in &rows {
                    events.push((
                        r.try_get::<String, _>("actor")?,
                        r.try_get::<String, _>("details")?,
                    ));
                }
                changes.insert(entitlement.clone(), events);
            }
            let quoted = format!("\"{subject}\"");
            let event = changes
                .get(&entitlement)
                .and_then(|events| events.iter().find(|(_, details)| details.contains(&quoted)));
            if let Some((actor, details)) = event {
                granted_by = Some(actor.clone());
                if details.contains("\"via\":\"scim\"") {
                    granted_why = Some("provisioned by SCIM".to_owned());
                }
            }
        }
        // The person's last SSH session (read once per person).
        if !last_used.contains_key(&subject) {
            let row = sqlx::query(
                "SELECT MAX(started_at) AS last FROM ssh_sessions WHERE principal = $1",
            )
            .bind(format!("user:{subject}"))
            .fetch_one(&mut *conn)
            .await?;
            last_used.insert(subject.clone(), row.try_get::<Option<i64>, _>("last")?);
        }
        let last = last_used.get(&subject).copied().flatten();
        out.push(Holding {
            user_id: Some(row.try_get("user_id")?),
            owner: Some(subject.clone()),
            subject,
            entitlement,
            source,
            grant_id: row.try_get("grant_id")?,
            token_id: None,
            granted_at: row.try_get("granted_at")?,
            granted_by,
            granted_why,
            last_used_at: last,
        });
    }
    Ok(out)
}

/// The reviewer of `holding` under `rule`, or why there is none.
pub(super) async fn reviewer_of(
    conn: &mut AnyConnection,
    rule: &ReviewerRule,
    holding: &Holding,
) -> Result<Result<String, String>, StoreError> {
    match rule {
        ReviewerRule::User(u) => Ok(Ok(u.to_string())),
        ReviewerRule::Owner if holding.source == "token" => Ok(Err(format!(
            "token `{}` belongs to no group, so it has no group owner: name a reviewer or use manager",
            holding.subject
        ))),
        ReviewerRule::Owner => {
            let row = sqlx::query(
                "SELECT u.name FROM group_owners o JOIN groups g ON g.id = o.group_id \
                 JOIN users u ON u.id = o.user_id WHERE g.name = $1 AND u.disabled_at IS NULL",
            )
            .bind(&holding.entitlement)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(match row {
                Some(r) => Ok(r.try_get("name")?),
                None => Err(format!(
                    "group `{}` has no enabled owner",
                    holding.entitlement
                )),
            })
        }
        ReviewerRule::Manager => {
            let Some(user_id) = &holding.user_id else {
                return Ok(Err(format!(
                    "token `{}` acts as itself and no person made it: it has no manager",
                    holding.subject
                )));
            };
            let owner = holding.owner.as_deref().unwrap_or(&holding.subject);
            let row = sqlx::query("SELECT document FROM scim_user_documents WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?;
            let manager_id = row
                .map(|r| r.try_get::<String, _>("document"))
                .transpose()?
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| {
                    d.get(warden_scim::schema::ENTERPRISE)?
                        .get("manager")?
                        .get("value")?
                        .as_str()
                        .map(str::to_owned)
                });
            let Some(manager_id) = manager_id else {
                return Ok(Err(format!("`{owner}` has no manager")));
            };
            let name = sqlx::query("SELECT name FROM users WHERE id = $1 AND disabled_at IS NULL")
                .bind(&manager_id)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(match name {
                Some(r) => Ok(r.try_get("name")?),
                None => Err(format!("`{owner}`'s manager is not an enabled user")),
            })
        }
    }
}
