//! Temporary grants end by themselves: every second, the grants whose time is up are ended
//! (each audited as `grant.expire`), and the change feed tells every proxy to recheck the
//! sessions they allowed. Every replica runs it; a grant another replica ended is skipped.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, Store};

/// Ends expired grants every second until the task is dropped.
pub(crate) async fn run_expiry(store: Arc<Store>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let ctx = AuditContext {
            actor: Actor::System,
            request_id: format!("grant-expiry-{}", uuid::Uuid::now_v7().simple()),
            source: None,
            now: Timestamp::from_system(SystemTime::now()),
        };
        match store.end_expired_grants(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(ended = n, "temporary grants expired"),
            Err(e) => tracing::error!(error = %e, "cannot end expired grants"),
        }
    }
}
