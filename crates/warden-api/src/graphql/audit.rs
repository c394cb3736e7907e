//! The audit log over GraphQL: events, the latest checkpoint, inclusion and consistency proofs.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_audit::HexHash;
use warden_model::Timestamp;
use warden_store::{EventFilter, Store};

use super::Capability;
use super::authz::authorize;
use super::{api_error, audit_error, bad_input};
use crate::audit::AuditLog;

/// Most events one query returns.
const MAX_EVENTS: i32 = 1000;

/// One audit event.
#[derive(Debug, Clone, SimpleObject)]
pub struct AuditEventObject {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When, RFC 3339.
    pub time: String,
    /// Who acted (`user:alice`, `token:ci`, `operator`).
    pub actor: String,
    /// The actor in full, as JSON.
    pub actor_detail: async_graphql::Json<serde_json::Value>,
    /// How they authenticated.
    pub auth: String,
    /// What they did.
    pub action: String,
    /// What they did it to.
    pub target: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// Why it failed or was denied.
    pub reason: Option<String>,
    /// The request that caused it.
    pub request_id: String,
    /// The remote address.
    pub source: Option<String>,
    /// Action-specific fields.
    pub details: async_graphql::Json<serde_json::Value>,
}

impl From<warden_audit::AuditEvent> for AuditEventObject {
    fn from(e: warden_audit::AuditEvent) -> Self {
        AuditEventObject {
            seq: e.seq,
            time: Timestamp::from_millis(e.time).to_string(),
            actor: e.actor_label,
            actor_detail: async_graphql::Json(e.actor),
            auth: e.auth,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            reason: e.reason,
            request_id: e.request_id,
            source: e.source,
            details: async_graphql::Json(e.details),
        }
    }
}

/// A signed tree head.
#[derive(Debug, Clone, SimpleObject)]
pub struct AuditCheckpoint {
    /// Events in the tree.
    pub size: u64,
    /// When it was signed, RFC 3339.
    pub time: String,
    /// The signed note (origin, size, base64 root, signature).
    pub note: String,
}

fn hashes(v: Vec<warden_audit::Hash>) -> Vec<String> {
    v.into_iter().map(|h| String::from(HexHash(h))).collect()
}

pub(super) fn time(field: &str, value: Option<String>) -> async_graphql::Result<Option<Timestamp>> {
    value
        .map(|v| crate::rfc3339(field, &v).map_err(bad_input))
        .transpose()
}

/// Audit log reads. Each needs the `api.read_audit` capability (admin, auditor).
#[derive(Debug, Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Events in sequence order (or newest first), filtered; page with `afterSeq` (or
    /// `beforeSeq`).
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per filter, as GraphQL callers see them"
    )]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        actor: Option<String>,
        action: Option<String>,
        target: Option<String>,
        since: Option<String>,
        until: Option<String>,
        after_seq: Option<u64>,
        before_seq: Option<u64>,
        #[graphql(desc = "`success`, `failure` or `denied`.")] outcome: Option<String>,
        #[graphql(default = false, desc = "The newest matching events, newest first.")]
        newest_first: bool,
        #[graphql(default = 100)] first: i32,
    ) -> async_graphql::Result<Vec<AuditEventObject>> {
        let caller = authorize(ctx, Capability::ReadAudit, "audit").await?;
        if !(1..=MAX_EVENTS).contains(&first) {
            return Err(bad_input(format!("`first` must be 1 to {MAX_EVENTS}")));
        }
        let filter = EventFilter {
            actor,
            action,
            target,
            since: time("since", since)?,
            until: time("until", until)?,
            after_seq,
            before_seq,
            outcome: match outcome.as_deref() {
                None | Some("") => None,
                Some(o) => Some(
                    o.parse::<warden_audit::Outcome>()
                        .map_err(bad_input)?
                        .as_str()
                        .to_owned(),
                ),
            },
            newest_first,
        };
        let store = ctx.data::<Arc<Store>>()?;
        let limit = u32::try_from(first).unwrap_or(1);
        let events = store
            .events(&filter, limit)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(events.into_iter().map(AuditEventObject::from).collect())
    }

    /// The newest signed checkpoint.
    async fn audit_checkpoint(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<AuditCheckpoint>> {
        let caller = authorize(ctx, Capability::ReadAudit, "audit").await?;
        let log = ctx.data::<AuditLog>()?;
        let latest = log.sign_now().await.map_err(|e| api_error(e, caller))?;
        Ok(latest.map(|c| AuditCheckpoint {
            size: c.size,
            time: c.time.to_string(),
            note: c.note,
        }))
    }

    /// The audit path of event `seq` in the tree of `treeSize` events, leaf first, hex.
    async fn audit_inclusion_proof(
        &self,
        ctx: &Context<'_>,
        seq: u64,
        tree_size: u64,
    ) -> async_graphql::Result<Vec<String>> {
        let caller = authorize(ctx, Capability::ReadAudit, "audit").await?;
        let log = ctx.data::<AuditLog>()?;
        Ok(hashes(
            log.inclusion(seq, tree_size)
                .await
                .map_err(|e| audit_error(e, caller))?,
        ))
    }

    /// The consistency proof from the tree of `fromSize` events to the tree of `toSize`, hex.
    async fn audit_consistency_proof(
        &self,
        ctx: &Context<'_>,
        from_size: u64,
        to_size: u64,
    ) -> async_graphql::Result<Vec<String>> {
        let caller = authorize(ctx, Capability::ReadAudit, "audit").await?;
        let log = ctx.data::<AuditLog>()?;
        Ok(hashes(
            log.consistency(from_size, to_size)
                .await
                .map_err(|e| audit_error(e, caller))?,
        ))
    }
}
