//! Access reviews in GraphQL: `createAccessReview`, `accessReviews`, `accessReview`,
//! `decideReviewItems` and `closeAccessReview`. Starting, closing and seeing every campaign
//! is the policy's `review` action; deciding an item is for its assigned reviewer (the store
//! refuses anyone else, and anyone reviewing their own access). A revocation is applied,
//! then verified in a second step.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_model::{Actor, Timestamp, UserName};
use warden_store::{AccessReview, NewAccessReview, ReviewScope, ReviewerRule, Store};

use super::Capability;
use super::authz::authorize;
use super::{Caller, api_error, bad_input};
use crate::policy::Engine;

/// One entitlement under review.
#[derive(Debug, Clone, SimpleObject)]
pub struct ReviewItemInfo {
    /// Its number in the campaign.
    pub n: u32,
    /// Who holds it: a person, or a token's name.
    pub subject: String,
    /// The group, or a token's `role:ROLE`.
    pub entitlement: String,
    /// `member`, `grant` or `token`.
    pub source: String,
    /// The person whose access it is: the subject, or the person a token acts as (else who
    /// made it).
    pub owner: Option<String>,
    /// When it was granted, RFC 3339.
    pub granted_at: String,
    /// By whom.
    pub granted_by: Option<String>,
    /// Why, when known.
    pub granted_why: Option<String>,
    /// The subject's last SSH session, RFC 3339.
    pub last_used_at: Option<String>,
    /// Who must decide it.
    pub reviewer: String,
    /// `keep` or `revoke`.
    pub decision: Option<String>,
    /// The justification.
    pub reason: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When, RFC 3339.
    pub decided_at: Option<String>,
    /// When the revocation was seen to have taken effect, RFC 3339.
    pub verified_at: Option<String>,
}

/// A review campaign.
#[derive(Debug, Clone, SimpleObject)]
pub struct AccessReviewInfo {
    /// Id.
    pub id: String,
    /// What people call it; empty for a campaign made without one.
    pub name: String,
    /// `groups:*`, `groups:ops,web`, `tokens:*` or `tokens:admin,scim`.
    pub scope: String,
    /// `user:NAME` or `manager`.
    pub reviewer: String,
    /// Who started it.
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub due_at: String,
    /// Whether undecided items are revoked at the due date.
    pub auto_revoke: bool,
    /// `open` or `closed`.
    pub state: String,
    /// RFC 3339.
    pub closed_at: Option<String>,
    /// SHA-256 of the population frozen at the start.
    pub population_sha256: String,
    /// The items (only the caller's own, unless they may `review`).
    pub items: Vec<ReviewItemInfo>,
}

fn info(r: AccessReview, only: Option<&str>) -> AccessReviewInfo {
    let ts = |t: Option<Timestamp>| t.map(Timestamp::rfc3339_millis);
    AccessReviewInfo {
        id: r.id,
        name: r.name,
        scope: r.scope,
        reviewer: r.reviewer_rule,
        created_by: r.created_by,
        created_at: r.created_at.rfc3339_millis(),
        due_at: r.due_at.rfc3339_millis(),
        auto_revoke: r.auto_revoke,
        state: if r.open { "open" } else { "closed" }.to_owned(),
        closed_at: ts(r.closed_at),
        population_sha256: r.population_sha256,
        items: r
            .items
            .into_iter()
            .filter(|i| only.is_none_or(|me| i.reviewer == me))
            .map(|i| ReviewItemInfo {
                n: i.n,
                subject: i.subject,
                entitlement: i.entitlement,
                source: i.source,
                owner: i.owner,
                granted_at: i.granted_at.rfc3339_millis(),
                granted_by: i.granted_by,
                granted_why: i.granted_why,
                last_used_at: ts(i.last_used_at),
                reviewer: i.reviewer,
                decision: i.decision,
                reason: i.reason,
                decided_by: i.decided_by,
                decided_at: ts(i.decided_at),
                verified_at: ts(i.verified_at),
            })
            .collect(),
    }
}

/// Whether the caller sees every campaign whole (`review`); else the reviewer name whose
/// items they see. Refusals of this quiet check are not recorded.
async fn viewer_scope(ctx: &Context<'_>, caller: &Caller) -> async_graphql::Result<Option<String>> {
    if caller.audit.actor == Actor::Operator {
        return Ok(None);
    }
    let store = ctx.data::<Arc<Store>>()?;
    let engine = ctx.data::<Arc<Engine>>()?;
    let Some(subject) = crate::policy::subject(store, &caller.audit.actor)
        .await
        .map_err(|e| api_error(e, caller))?
    else {
        return Ok(Some(String::new()));
    };
    let allowed = engine
        .decide(
            &subject,
            "review",
            &warden_policy::Object::Api("reviews".into()),
            &serde_json::json!({}),
        )
        .decided
        .allow;
    Ok(match (&caller.audit.actor, allowed) {
        (_, true) => None,
        (Actor::User { name, .. }, false) => Some(name.to_string()),
        _ => Some(String::new()),
    })
}

/// `2026-12-31` (the end of that day, UTC), an RFC 3339 time, or a span from now (`14d`).
pub fn due(text: &str, now: Timestamp) -> async_graphql::Result<Timestamp> {
    let text = text.trim();
    let bad = || {
        bad_input(format!(
            "invalid due date `{text}`: use 2026-12-31, an RFC 3339 time or a span like 14d"
        ))
    };
    let at = if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{text}T23:59:59Z")) {
        Timestamp::from_system(t)
    } else if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        Timestamp::from_system(t)
    } else {
        let span = humantime::parse_duration(text).map_err(|_| bad())?;
        now.plus(span)
    };
    if at.as_millis() <= now.as_millis() {
        return Err(bad_input(format!("the due date `{text}` has passed")));
    }
    Ok(at)
}

/// Access reviews.
#[derive(Debug, Default)]
pub struct ReviewQuery;

#[Object]
impl ReviewQuery {
    /// Campaigns, newest first: all (with `review`), or those with items for the caller.
    async fn access_reviews(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AccessReviewInfo>> {
        let caller = authorize(ctx, Capability::Viewer, "reviews").await?;
        let only = viewer_scope(ctx, caller).await?;
        let store = ctx.data::<Arc<Store>>()?;
        let all = store
            .access_reviews()
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(all
            .into_iter()
            .filter(|r| {
                only.as_deref()
                    .is_none_or(|me| r.items.iter().any(|i| i.reviewer == me))
            })
            .map(|r| info(r, only.as_deref()))
            .collect())
    }

    /// One campaign (its items: all with `review`, else the caller's).
    async fn access_review(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<Option<AccessReviewInfo>> {
        let caller = authorize(ctx, Capability::Viewer, &format!("review:{id}")).await?;
        let only = viewer_scope(ctx, caller).await?;
        let store = ctx.data::<Arc<Store>>()?;
        let review = store
            .access_review(&id)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(review
            .filter(|r| {
                only.as_deref()
                    .is_none_or(|me| r.items.iter().any(|i| i.reviewer == me))
            })
            .map(|r| info(r, only.as_deref())))
    }
}

/// Starting, deciding and closing reviews.
#[derive(Debug, Default)]
pub struct ReviewMutation;

#[Object]
impl ReviewMutation {
    /// Starts a campaign over `groups` (empty: every group), or over `scope` (`groups:…`,
    /// `tokens:*`, `tokens:admin,scim`: the live API tokens with their owners and roles),
    /// reviewed by `reviewer` (a user name, `owner` or `manager`), due at `due`; `autoRevoke`
    /// revokes what is undecided then; `name` is what people call it (one line, at most 100
    /// bytes).
    #[expect(
        clippy::too_many_arguments,
        reason = "a resolver's arguments are the mutation's arguments, as the schema names them"
    )]
    async fn create_access_review(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        #[graphql(default)] groups: Vec<String>,
        scope: Option<String>,
        reviewer: String,
        due: String,
        #[graphql(default)] auto_revoke: bool,
    ) -> async_graphql::Result<AccessReviewInfo> {
        let caller = authorize(ctx, Capability::Review, "reviews").await?;
        let reviewer = match reviewer.trim() {
            "manager" => ReviewerRule::Manager,
            "owner" => ReviewerRule::Owner,
            name => ReviewerRule::User(UserName::new(name).map_err(bad_input)?),
        };
        let scope = if let Some(scope) = scope {
            if !groups.is_empty() {
                return Err(bad_input("give groups or a scope, not both"));
            }
            ReviewScope::parse(&scope).map_err(bad_input)?
        } else if groups.is_empty() {
            ReviewScope::AllGroups
        } else {
            let mut names = Vec::new();
            for g in groups {
                names.push(
                    warden_model::GroupName::new(g)
                        .map_err(bad_input)?
                        .to_string(),
                );
            }
            names.sort();
            names.dedup();
            ReviewScope::Groups(names)
        };
        let name = name.unwrap_or_default().trim().to_owned();
        if name.len() > 100 || name.chars().any(char::is_control) {
            return Err(bad_input(
                "a review's name is one line of at most 100 bytes",
            ));
        }
        let new = NewAccessReview {
            name,
            scope,
            reviewer,
            due_at: self::due(&due, caller.audit.now)?,
            auto_revoke,
        };
        let (store, audit) = (ctx.data::<Arc<Store>>()?.clone(), caller.audit.clone());
        let review =
            crate::request::detached(async move { store.create_access_review(&audit, new).await })
                .await
                .map_err(|e| api_error(e, caller))?;
        Ok(info(review, None))
    }

    /// Decides items of a campaign: `keep` or `revoke`, with a justification. Revocations
    /// are applied, then verified.
    async fn decide_review_items(
        &self,
        ctx: &Context<'_>,
        review: String,
        items: Vec<u32>,
        decision: String,
        reason: String,
    ) -> async_graphql::Result<AccessReviewInfo> {
        let caller = authorize(ctx, Capability::Viewer, &format!("review:{review}")).await?;
        let revoke = match decision.as_str() {
            "keep" => false,
            "revoke" => true,
            other => {
                return Err(bad_input(format!(
                    "unknown decision `{other}`: use keep or revoke"
                )));
            }
        };
        let reason = reason.trim().to_owned();
        if reason.is_empty() || reason.len() > 500 || reason.chars().any(char::is_control) {
            return Err(bad_input(
                "give a justification: one line of at most 500 bytes",
            ));
        }
        if items.is_empty() {
            return Err(bad_input("name the items to decide"));
        }
        let only = viewer_scope(ctx, caller).await?;
        let (store, audit) = (ctx.data::<Arc<Store>>()?.clone(), caller.audit.clone());
        let done = crate::request::detached(async move {
            let decided = store
                .decide_review_items(&audit, &review, &items, revoke, &reason)
                .await?;
            if revoke {
                store.verify_review(&audit, &decided.id).await
            } else {
                Ok(decided)
            }
        })
        .await
        .map_err(|e| api_error(e, caller))?;
        Ok(info(done, only.as_deref()))
    }

    /// Closes a campaign; what is undecided stays so on the record.
    async fn close_access_review(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<AccessReviewInfo> {
        let caller = authorize(ctx, Capability::Review, &format!("review:{id}")).await?;
        let (store, audit) = (ctx.data::<Arc<Store>>()?.clone(), caller.audit.clone());
        let review =
            crate::request::detached(async move { store.close_access_review(&audit, &id).await })
                .await
                .map_err(|e| api_error(e, caller))?;
        Ok(info(review, None))
    }
}
