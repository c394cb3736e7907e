//! Access reviews: who holds which group, or which API tokens are live, is frozen and hashed
//! when a campaign starts; each item goes to a reviewer (a named person, the group's owner, or
//! the person's manager from SCIM); decisions keep or revoke with a justification; a
//! revocation is applied (the membership removed, the grant ended, the token revoked), then
//! verified by reading it again; at the due date undecided items can be revoked automatically.
//! Nobody reviews their own access, nor a token that acts as them or that they made.

use std::collections::BTreeMap;

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::{Role, Timestamp, UserName};

use crate::audit::Action;
use crate::audit::Name;
use crate::users::new_id;
use crate::{AuditContext, Store, StoreError};

mod population;

use self::population::{population, reviewer_of};

/// What a campaign covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewScope {
    /// Every group.
    AllGroups,
    /// These groups.
    Groups(Vec<String>),
    /// Every live API token, with its owner and role (not the tokens `warden login` issues:
    /// those are a person's sign-in, as short-lived as a console session).
    AllTokens,
    /// The live API tokens of these roles.
    Tokens(Vec<Role>),
}

impl ReviewScope {
    /// Reads `groups:*`, `groups:ops,web`, `tokens:*` or `tokens:admin,scim` (names checked,
    /// sorted, each once).
    pub fn parse(text: &str) -> Result<ReviewScope, String> {
        let usage = || {
            format!(
                "invalid review scope `{text}`: use groups:*, groups:NAME,NAME, tokens:* or tokens:ROLE,ROLE"
            )
        };
        if let Some(roles) = text.trim().strip_prefix("tokens:") {
            if roles == "*" {
                return Ok(ReviewScope::AllTokens);
            }
            let mut parsed = Vec::new();
            for role in roles.split(',') {
                let role: Role = role
                    .trim()
                    .parse()
                    .map_err(|e| format!("invalid review scope `{text}`: {e}"))?;
                parsed.push(role);
            }
            parsed.sort();
            parsed.dedup();
            return Ok(ReviewScope::Tokens(parsed));
        }
        let groups = text.trim().strip_prefix("groups:").ok_or_else(usage)?;
        if groups == "*" {
            return Ok(ReviewScope::AllGroups);
        }
        let mut names = Vec::new();
        for name in groups.split(',') {
            let name = warden_model::GroupName::new(name.trim())
                .map_err(|e| format!("invalid review scope `{text}`: {e}"))?;
            names.push(name.to_string());
        }
        names.sort();
        names.dedup();
        Ok(ReviewScope::Groups(names))
    }

    /// As stored and shown: `groups:*`, `groups:ops,web`, `tokens:*`, `tokens:admin,scim`.
    pub fn as_text(&self) -> String {
        match self {
            ReviewScope::AllGroups => "groups:*".to_owned(),
            ReviewScope::Groups(names) => format!("groups:{}", names.join(",")),
            ReviewScope::AllTokens => "tokens:*".to_owned(),
            ReviewScope::Tokens(roles) => format!(
                "tokens:{}",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// Who reviews an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewerRule {
    /// This person reviews everything.
    User(UserName),
    /// Each subject's manager (the SCIM enterprise extension's `manager`).
    Manager,
    /// Each group's owner.
    Owner,
}

impl ReviewerRule {
    /// Reads `owner`, `manager` or a person's name.
    pub fn parse(text: &str) -> Result<ReviewerRule, String> {
        match text.trim() {
            "manager" => Ok(ReviewerRule::Manager),
            "owner" => Ok(ReviewerRule::Owner),
            name => UserName::new(name).map(ReviewerRule::User).map_err(|e| {
                format!("invalid reviewer `{text}`: {e}: use owner, manager or a user name")
            }),
        }
    }

    fn as_text(&self) -> String {
        match self {
            ReviewerRule::User(u) => format!("user:{u}"),
            ReviewerRule::Manager => "manager".to_owned(),
            ReviewerRule::Owner => "owner".to_owned(),
        }
    }
}

/// A campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReview {
    /// Id.
    pub id: String,
    /// What people call it; empty for a campaign made without one.
    pub name: String,
    /// `groups:*`, `groups:ops,web`, `tokens:*` or `tokens:admin,scim`.
    pub scope: String,
    /// `user:NAME` or `manager`.
    pub reviewer_rule: String,
    /// Who started it.
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When decisions are due.
    pub due_at: Timestamp,
    /// Whether undecided items are revoked at the due date.
    pub auto_revoke: bool,
    /// `open` or `closed`.
    pub open: bool,
    /// When it closed.
    pub closed_at: Option<Timestamp>,
    /// SHA-256 of the frozen population (one line per item, in item order).
    pub population_sha256: String,
    /// The items.
    pub items: Vec<ReviewItem>,
}

/// One entitlement under review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    /// Its number in the campaign, from 1.
    pub n: u32,
    /// Who holds it: a person, or a token's name.
    pub subject: String,
    /// The group, or a token's `role:ROLE`.
    pub entitlement: String,
    /// `member`, `grant` or `token`.
    pub source: String,
    /// The person whose access it is: the subject, or the person a token acts as (else who
    /// made it); `None` for a token nobody in particular made (the operator, SCIM).
    pub owner: Option<String>,
    /// When it was granted.
    pub granted_at: Timestamp,
    /// By whom, from the audit log (or the grant).
    pub granted_by: Option<String>,
    /// Why, when known (a grant's request reason, `scim`).
    pub granted_why: Option<String>,
    /// The subject's last SSH session start.
    pub last_used_at: Option<Timestamp>,
    /// Who must decide it.
    pub reviewer: String,
    /// `keep` or `revoke`, once decided.
    pub decision: Option<String>,
    /// The justification.
    pub reason: Option<String>,
    /// Who decided (`user:bob`, `system` for an automatic revocation).
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// When a revocation was seen to have taken effect.
    pub verified_at: Option<Timestamp>,
}

/// A campaign to start.
#[derive(Debug, Clone)]
pub struct NewAccessReview {
    /// What people call it (one line, at most 100 bytes; may be empty).
    pub name: String,
    /// What it covers.
    pub scope: ReviewScope,
    /// Who reviews.
    pub reviewer: ReviewerRule,
    /// When decisions are due.
    pub due_at: Timestamp,
    /// Revoke what is undecided at the due date.
    pub auto_revoke: bool,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn item_from_row(row: &AnyRow) -> Result<ReviewItem, StoreError> {
    let ts = |c: &str| -> Result<Option<Timestamp>, StoreError> {
        Ok(row
            .try_get::<Option<i64>, _>(c)?
            .map(Timestamp::from_millis))
    };
    let subject: String = row.try_get("subject")?;
    let source: String = row.try_get("source")?;
    // Items from before tokens could be reviewed have no owner column: theirs is the subject.
    let owner = match row.try_get::<Option<String>, _>("owner")? {
        Some(owner) => Some(owner),
        None if source == "token" => None,
        None => Some(subject.clone()),
    };
    Ok(ReviewItem {
        n: u32::try_from(row.try_get::<i64, _>("n")?).map_err(corrupt)?,
        subject,
        entitlement: row.try_get("entitlement")?,
        source,
        owner,
        granted_at: Timestamp::from_millis(row.try_get("granted_at")?),
        granted_by: row.try_get("granted_by")?,
        granted_why: row.try_get("granted_why")?,
        last_used_at: ts("last_used_at")?,
        reviewer: row.try_get("reviewer")?,
        decision: row.try_get("decision")?,
        reason: row.try_get("reason")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: ts("decided_at")?,
        verified_at: ts("verified_at")?,
    })
}

const ITEM_COLUMNS: &str = "n, subject, entitlement, source, grant_id, granted_at, granted_by, granted_why, \
     last_used_at, reviewer, decision, reason, decided_by, decided_at, verified_at, token_id, owner";

async fn fetch_review(conn: &mut AnyConnection, id: &str) -> Result<AccessReview, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, scope, reviewer_rule, created_by, created_at, due_at, auto_revoke, state, closed_at, \
         population_sha256 FROM access_reviews WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::NotFound {
        kind: "access review",
        name: id.chars().take(80).collect(),
    })?;
    let sql =
        format!("SELECT {ITEM_COLUMNS} FROM access_review_items WHERE review_id = $1 ORDER BY n");
    let items = sqlx::query(&sql)
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(item_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AccessReview {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        reviewer_rule: row.try_get("reviewer_rule")?,
        created_by: row.try_get("created_by")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        due_at: Timestamp::from_millis(row.try_get("due_at")?),
        auto_revoke: row.try_get::<i64, _>("auto_revoke")? != 0,
        open: row.try_get::<String, _>("state")? == "open",
        closed_at: row
            .try_get::<Option<i64>, _>("closed_at")?
            .map(Timestamp::from_millis),
        population_sha256: row.try_get("population_sha256")?,
        items,
    })
}

impl Store {
    /// Opens the campaign of a schedule if its last one was opened `every` ago or more (or
    /// never): every replica's timer may call it, and one claims each turn (the claim is the
    /// schedule's bookkeeping; the campaign is audited as `review.create` as ever). `None` when
    /// it is not yet due, or another replica took the turn.
    pub async fn open_scheduled_review(
        &self,
        ctx: &AuditContext,
        new: NewAccessReview,
        every_ms: i64,
    ) -> Result<Option<AccessReview>, StoreError> {
        let scope = new.scope.as_text();
        // A read first: most calls find the turn not yet due and write nothing.
        let last: Option<i64> =
            sqlx::query_scalar("SELECT opened_at FROM review_schedules WHERE scope = $1")
                .bind(&scope)
                .fetch_optional(&self.pool)
                .await?;
        if last.is_some_and(|t| t > ctx.now.as_millis().saturating_sub(every_ms)) {
            return Ok(None);
        }
        let claimed = sqlx::query(
            "INSERT INTO review_schedules (scope, opened_at) VALUES ($1, $2) \
             ON CONFLICT (scope) DO UPDATE SET opened_at = excluded.opened_at \
             WHERE review_schedules.opened_at <= $3",
        )
        .bind(&scope)
        .bind(ctx.now.as_millis())
        .bind(ctx.now.as_millis().saturating_sub(every_ms))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        self.create_access_review(ctx, new).await.map(Some)
    }

    /// Starts a campaign: freezes and hashes the population, assigns each item's reviewer.
    /// Refused when a reviewer cannot be found for an item, or would review their own access.
    pub async fn create_access_review(
        &self,
        ctx: &AuditContext,
        new: NewAccessReview,
    ) -> Result<AccessReview, StoreError> {
        let id = new_id();
        let action = Action {
            name: Change::ReviewCreate.into(),
            target: format!("review:{id}"),
            details: json!({
                "name": new.name,
                "scope": new.scope.as_text(),
                "reviewer": new.reviewer.as_text(),
                "due_at": new.due_at.rfc3339_millis(),
                "auto_revoke": new.auto_revoke,
            }),
        };
        self.audited_detailed(ctx, action, async |conn| {
            if let ReviewScope::Groups(names) = &new.scope {
                for name in names {
                    let found = sqlx::query("SELECT 1 FROM groups WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut *conn)
                        .await?;
                    if found.is_none() {
                        return Err(StoreError::NotFound { kind: "group", name: name.clone() });
                    }
                }
            }
            let holdings = population(conn, &new.scope, ctx.now).await?;
            if holdings.is_empty() {
                let what = match new.scope {
                    ReviewScope::AllTokens | ReviewScope::Tokens(_) => "no live token is in",
                    ReviewScope::AllGroups | ReviewScope::Groups(_) => "nobody holds",
                };
                return Err(StoreError::Conflict(format!(
                    "{what} {}: nothing to review",
                    new.scope.as_text()
                )));
            }
            let mut reviewers = Vec::with_capacity(holdings.len());
            let mut problems = Vec::new();
            for h in &holdings {
                match reviewer_of(conn, &new.reviewer, h).await? {
                    Ok(r) if h.source == "token" && h.owner.as_ref() == Some(&r) => {
                        problems.push(format!("`{r}` would review their own token `{}`", h.subject));
                    }
                    Ok(r) if h.owner.as_ref() == Some(&r) => problems.push(format!(
                        "`{r}` would review their own access to `{}`",
                        h.entitlement
                    )),
                    Ok(r) => reviewers.push(r),
                    Err(why) if problems.contains(&why) => {}
                    Err(why) => problems.push(why),
                }
            }
            if let Some(first) = problems.first() {
                let more = problems.len() - 1;
                let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
                return Err(StoreError::Conflict(format!("cannot assign reviewers: {first}{more}")));
            }
            let mut hasher = Sha256::new();
            for (h, r) in holdings.iter().zip(&reviewers) {
                hasher.update(h.line(r).as_bytes());
            }
            let sha = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>();
            sqlx::query(
                "INSERT INTO access_reviews (id, scope, reviewer_rule, created_by, created_at, due_at, \
                 auto_revoke, state, population_sha256, name) VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9)",
            )
            .bind(&id)
            .bind(new.scope.as_text())
            .bind(new.reviewer.as_text())
            .bind(ctx.actor.to_string())
            .bind(ctx.now.as_millis())
            .bind(new.due_at.as_millis())
            .bind(i64::from(new.auto_revoke))
            .bind(&sha)
            .bind(&new.name)
            .execute(&mut *conn)
            .await?;
            for (i, (h, r)) in holdings.iter().zip(&reviewers).enumerate() {
                sqlx::query(
                    "INSERT INTO access_review_items (review_id, n, subject, entitlement, source, grant_id, \
                     granted_at, granted_by, granted_why, last_used_at, reviewer, token_id, owner) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&id)
                .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
                .bind(&h.subject)
                .bind(&h.entitlement)
                .bind(h.source)
                .bind(h.grant_id.as_deref())
                .bind(h.granted_at)
                .bind(h.granted_by.as_deref())
                .bind(h.granted_why.as_deref())
                .bind(h.last_used_at)
                .bind(r)
                .bind(h.token_id.as_deref())
                .bind(h.owner.as_deref())
                .execute(&mut *conn)
                .await?;
            }
            let review = fetch_review(conn, &id).await?;
            let details = json!({ "items": review.items.len(), "population_sha256": sha });
            Ok((review, details))
        })
        .await
    }

    /// One campaign with its items.
    pub async fn access_review(&self, id: &str) -> Result<Option<AccessReview>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        match fetch_review(&mut conn, id).await {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Campaigns, newest first, without their items.
    pub async fn access_reviews(&self) -> Result<Vec<AccessReview>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM access_reviews ORDER BY created_at DESC, id DESC LIMIT 500",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::new();
        for row in rows {
            out.push(fetch_review(&mut conn, &row.try_get::<String, _>("id")?).await?);
        }
        Ok(out)
    }

    /// Decides items of an open campaign: keep, or revoke (the membership is removed, or the
    /// grant ended, in the same transaction). Only each item's reviewer decides it (the
    /// operator and Warden itself may decide any); nobody decides their own access; a decided
    /// item is not decided again. Revocations are then verified by [`Store::verify_review`].
    pub async fn decide_review_items(
        &self,
        ctx: &AuditContext,
        id: &str,
        items: &[u32],
        revoke: bool,
        reason: &str,
    ) -> Result<AccessReview, StoreError> {
        let me = ctx.actor.to_string();
        let action = Action {
            name: Name::Change(if revoke {
                Change::ReviewRevoke
            } else {
                Change::ReviewKeep
            }),
            target: format!("review:{}", id.chars().take(80).collect::<String>()),
            details: json!({ "items": items, "reason": reason }),
        };
        self.audited_detailed(ctx, action, async |conn| {
            let review = fetch_review(conn, id).await?;
            // Warden's own timer lost a race with another replica's: no change, no record.
            let timer = me == "system";
            if !review.open && timer {
                return Err(StoreError::Raced);
            }
            if !review.open {
                return Err(StoreError::Conflict(format!("review `{id}` is closed")));
            }
            let mut revoked = Vec::new();
            let mut decided = 0;
            for n in items {
                let item = review
                    .items
                    .iter()
                    .find(|i| i.n == *n)
                    .ok_or_else(|| StoreError::NotFound { kind: "review item", name: n.to_string() })?;
                let privileged = matches!(me.as_str(), "operator" | "system");
                if item.owner.as_ref().is_some_and(|o| me == format!("user:{o}")) {
                    return Err(StoreError::Conflict(format!(
                        "item {n}: you cannot review your own access"
                    )));
                }
                if !privileged && me != format!("user:{}", item.reviewer) {
                    return Err(StoreError::Conflict(format!(
                        "item {n} is for `{}` to review",
                        item.reviewer
                    )));
                }
                if let Some(d) = &item.decision {
                    if timer {
                        continue;
                    }
                    return Err(StoreError::Conflict(format!("item {n} is already decided ({d})")));
                }
                sqlx::query(
                    "UPDATE access_review_items SET decision = $1, reason = $2, decided_by = $3, decided_at = $4 \
                     WHERE review_id = $5 AND n = $6",
                )
                .bind(if revoke { "revoke" } else { "keep" })
                .bind(reason)
                .bind(&me)
                .bind(ctx.now.as_millis())
                .bind(id)
                .bind(i64::from(*n))
                .execute(&mut *conn)
                .await?;
                decided += 1;
                if revoke {
                    revoke_item(conn, id, *n, ctx.now).await?;
                    revoked.push(format!("{}:{}", item.subject, item.entitlement));
                }
            }
            if decided == 0 && timer {
                return Err(StoreError::Raced);
            }
            close_if_done(conn, id, ctx.now).await?;
            Ok((fetch_review(conn, id).await?, json!({ "revoked": revoked })))
        })
        .await
    }

    /// Checks that every revoked, unverified item of a campaign is really gone (no
    /// membership, no live grant) and records when (`review.verify`); a revocation that did
    /// not take effect is left unverified and named in the event.
    pub async fn verify_review(
        &self,
        ctx: &AuditContext,
        id: &str,
    ) -> Result<AccessReview, StoreError> {
        let action = Action {
            name: Change::ReviewVerify.into(),
            target: format!("review:{}", id.chars().take(80).collect::<String>()),
            details: json!({}),
        };
        self.audited_detailed(ctx, action, async |conn| {
            let review = fetch_review(conn, id).await?;
            let mut verified = Vec::new();
            let mut still = Vec::new();
            for item in review.items.iter().filter(|i| i.decision.as_deref() == Some("revoke") && i.verified_at.is_none()) {
                let held = if item.source == "token" {
                    sqlx::query(
                        "SELECT 1 FROM access_review_items i JOIN api_tokens t ON t.id = i.token_id \
                         WHERE i.review_id = $1 AND i.n = $2 AND t.revoked_at IS NULL AND t.expires_at > $3",
                    )
                    .bind(id)
                    .bind(i64::from(item.n))
                    .bind(ctx.now.as_millis())
                    .fetch_optional(&mut *conn)
                    .await?
                } else {
                    sqlx::query(
                        "SELECT 1 FROM group_members m JOIN users u ON u.id = m.user_id JOIN groups g ON g.id = m.group_id \
                         WHERE u.name = $1 AND g.name = $2 \
                         UNION ALL SELECT 1 FROM grants gr JOIN users u ON u.id = gr.user_id JOIN groups g ON g.id = gr.group_id \
                         WHERE u.name = $1 AND g.name = $2 AND gr.ended_at IS NULL AND gr.expires_at > $3",
                    )
                    .bind(&item.subject)
                    .bind(&item.entitlement)
                    .bind(ctx.now.as_millis())
                    .fetch_optional(&mut *conn)
                    .await?
                };
                if held.is_some() {
                    still.push(item.n);
                    continue;
                }
                sqlx::query("UPDATE access_review_items SET verified_at = $1 WHERE review_id = $2 AND n = $3")
                    .bind(ctx.now.as_millis())
                    .bind(id)
                    .bind(i64::from(item.n))
                    .execute(&mut *conn)
                    .await?;
                verified.push(item.n);
            }
            Ok((fetch_review(conn, id).await?, json!({ "verified": verified, "still_held": still })))
        })
        .await
    }

    /// Closes an open campaign; undecided items stay undecided on the record.
    pub async fn close_access_review(
        &self,
        ctx: &AuditContext,
        id: &str,
    ) -> Result<AccessReview, StoreError> {
        let action = Action {
            name: Change::ReviewClose.into(),
            target: format!("review:{}", id.chars().take(80).collect::<String>()),
            details: json!({}),
        };
        self.audited(ctx, action, async |conn| {
            let review = fetch_review(conn, id).await?;
            if !review.open && ctx.actor == warden_model::Actor::System {
                return Err(StoreError::Raced);
            }
            if !review.open {
                return Err(StoreError::Conflict(format!("review `{id}` is closed")));
            }
            sqlx::query("UPDATE access_reviews SET state = 'closed', closed_at = $1 WHERE id = $2")
                .bind(ctx.now.as_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
            fetch_review(conn, id).await
        })
        .await
    }

    /// Open campaigns past their due date that revoke automatically; and those due within a
    /// day not reminded in the last day (for `review.remind`).
    pub async fn reviews_needing_attention(
        &self,
        now: Timestamp,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let due = sqlx::query(
            "SELECT id FROM access_reviews WHERE state = 'open' AND auto_revoke = 1 AND due_at <= $1",
        )
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
        let day = 24 * 3600 * 1000;
        let remind = sqlx::query(
            "SELECT id FROM access_reviews WHERE state = 'open' AND due_at <= $1 \
             AND (last_reminded_at IS NULL OR last_reminded_at <= $2)",
        )
        .bind(now.as_millis() + day)
        .bind(now.as_millis() - day)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
        Ok((due, remind))
    }

    /// Records a reminder for a campaign's undecided items, by reviewer (`review.remind`,
    /// which webhooks can carry).
    pub async fn remind_review(&self, ctx: &AuditContext, id: &str) -> Result<(), StoreError> {
        let action = Action {
            name: Change::ReviewRemind.into(),
            target: format!("review:{id}"),
            details: json!({}),
        };
        self.audited_detailed(ctx, action, async |conn| {
            let review = fetch_review(conn, id).await?;
            let mut pending = BTreeMap::<String, u32>::new();
            for item in review.items.iter().filter(|i| i.decision.is_none()) {
                *pending.entry(item.reviewer.clone()).or_default() += 1;
            }
            sqlx::query("UPDATE access_reviews SET last_reminded_at = $1 WHERE id = $2")
                .bind(ctx.now.as_millis())
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok((
                (),
                json!({ "pending_by_reviewer": pending, "due_at": review.due_at.rfc3339_millis() }),
            ))
        })
        .await
    }
}

/// Removes what item `n` of review `id` reviewed: the membership, the grant, or the token.
async fn revoke_item(
    conn: &mut AnyConnection,
    id: &str,
    n: u32,
    now: Timestamp,
) -> Result<(), StoreError> {
    let row = sqlx::query("SELECT subject, entitlement, source, grant_id, token_id FROM access_review_items WHERE review_id = $1 AND n = $2")
        .bind(id)
        .bind(i64::from(n))
        .fetch_one(&mut *conn)
        .await?;
    let source: String = row.try_get("source")?;
    if source == "token" {
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now.as_millis())
            .bind(row.try_get::<Option<String>, _>("token_id")?)
            .execute(&mut *conn)
            .await?;
    } else if source == "grant" {
        sqlx::query("UPDATE grants SET ended_at = $1, end_reason = 'revoked by review' WHERE id = $2 AND ended_at IS NULL")
            .bind(now.as_millis())
            .bind(row.try_get::<Option<String>, _>("grant_id")?)
            .execute(&mut *conn)
            .await?;
    } else {
        sqlx::query(
            "DELETE FROM group_members WHERE user_id = (SELECT id FROM users WHERE name = $1) \
             AND group_id = (SELECT id FROM groups WHERE name = $2)",
        )
        .bind(row.try_get::<String, _>("subject")?)
        .bind(row.try_get::<String, _>("entitlement")?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn close_if_done(
    conn: &mut AnyConnection,
    id: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let open =
        sqlx::query("SELECT 1 FROM access_review_items WHERE review_id = $1 AND decision IS NULL")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    if open.is_none() {
        sqlx::query("UPDATE access_reviews SET state = 'closed', closed_at = $1 WHERE id = $2 AND state = 'open'")
            .bind(now.as_millis())
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
