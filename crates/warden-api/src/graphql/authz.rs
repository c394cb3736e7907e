//! Authorization of GraphQL resolvers: each asks [`authorize`] for the capability it needs,
//! decided by [`warden_runtime::authz`] (deny by default), and a request's refusals are
//! recorded as one event when it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::{Context, ErrorExtensions};
use warden_runtime::authz::{Capability, Denial, decide};
use warden_store::{AuditContext, Outcome, Store, StoreError};

use super::Caller;
use crate::policy::Engine;

/// The refusals of one GraphQL request, recorded as one event when the request ends
/// ([`Refusals::record`]): a query of five hundred refused fields writes one event that counts
/// them, not five hundred.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<Option<Coalesced>>);

/// The first refusal of a request, and how many there were of each action.
#[derive(Debug)]
struct Coalesced {
    action: &'static str,
    target: String,
    denial: Denial,
    count: u64,
    by_action: BTreeMap<&'static str, u64>,
}

impl Refusals {
    fn add(&self, action: &'static str, target: &str, denial: Denial) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let first = slot.get_or_insert_with(|| Coalesced {
            action,
            target: target.to_owned(),
            denial,
            count: 0,
            by_action: BTreeMap::new(),
        });
        first.count += 1;
        *first.by_action.entry(action).or_insert(0) += 1;
    }

    /// Records the request's refusals, if any, as one denial: the first one's action, target
    /// and reason, with the count of every refused field by action when there was more than
    /// one. Fails when the record cannot be written: no audit record, no answer.
    pub async fn record(&self, store: &Arc<Store>, audit: &AuditContext) -> Result<(), StoreError> {
        let Some(c) = self.0.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return Ok(());
        };
        let mut details = c.denial.details;
        if c.count > 1 {
            let counts =
                serde_json::json!({ "refused": c.count, "refused_by_action": c.by_action });
            details = match (details, counts) {
                (serde_json::Value::Object(mut d), serde_json::Value::Object(more)) => {
                    d.extend(more);
                    serde_json::Value::Object(d)
                }
                (_, counts) => counts,
            };
        }
        let (store, audit) = (store.clone(), audit.clone());
        crate::request::detached(async move {
            store
                .record(
                    &audit,
                    c.action,
                    &c.target,
                    details,
                    Outcome::Denied,
                    Some(&c.denial.reason),
                )
                .await
        })
        .await
    }
}

/// Returns the caller if it may use `cap` on `target`; otherwise notes the refusal (recorded
/// with the request's others when it ends) and returns a FORBIDDEN error.
pub(crate) async fn authorize<'a>(
    ctx: &Context<'a>,
    cap: Capability,
    target: &str,
) -> async_graphql::Result<&'a Caller> {
    let caller = ctx.data::<Caller>()?;
    let store = ctx.data::<Arc<Store>>()?;
    let engine = ctx.data::<Arc<Engine>>()?;
    match decide(engine, store, &caller.audit, cap).await {
        Ok(None) => Ok(caller),
        // No audit record, no answer: fail closed with an opaque error.
        Err(err) => Err(super::api_error(err, caller)),
        Ok(Some(denial)) => {
            let message = format!("permission denied: {}", denial.reason);
            tracing::info!(actor = %caller.audit.actor, action = cap.action(), target, reason = %denial.reason, "denied");
            caller.refusals.add(cap.action(), target, denial);
            Err(async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "FORBIDDEN")))
        }
    }
}
