//! What happens by the clock, every second on every replica: temporary grants that expired
//! are ended (each audited as `grant.expire`, and the change feed tells every proxy to
//! recheck the sessions they allowed); access reviews past their due date with automatic
//! revocation have their undecided items revoked, verified and the campaign closed; open
//! reviews due within a day are reminded once a day (`review.remind`, for webhooks); findings
//! passing 50 % and 100 % of their SLA are announced (`vuln.sla.half`, `vuln.sla.breach`) and
//! risk acceptances that expired reopen their findings (`vuln.accept.expire`); SSH sessions
//! whose proxy stopped without ending them (its lease ran out) end on the record; scheduled
//! access reviews open their campaign when its turn comes. Work
//! another replica did first is skipped without a record (`StoreError::Raced`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use warden_model::{Actor, Timestamp};
use warden_store::{AuditContext, Store};
use warden_vuln_store::VulnStore;

/// The audit context of work the server does on its own (timers), at the current time.
pub fn system() -> AuditContext {
    AuditContext {
        actor: Actor::System,
        request_id: format!("timer-{}", uuid::Uuid::now_v7().simple()),
        source: None,
        now: Timestamp::from_system(SystemTime::now()),
    }
}

/// Runs until the task is dropped, with the kept vulnerability figures' own loop
/// ([`vuln_figures`]: a pass over a million findings takes seconds, which must not hold up
/// grants that expire).
pub async fn run(
    store: Arc<Store>,
    sla: warden_vuln::SlaTiers,
    schedules: Vec<crate::config::ReviewSchedule>,
    figures_every: Duration,
) {
    // A task of its own, ended when this one is (dropping the set aborts it).
    let mut figures = tokio::task::JoinSet::new();
    figures.spawn(vuln_figures(store.clone(), figures_every));
    clock(store, sla, schedules).await;
}

async fn clock(
    store: Arc<Store>,
    sla: warden_vuln::SlaTiers,
    schedules: Vec<crate::config::ReviewSchedule>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match store.end_expired_grants(&system()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(ended = n, "temporary grants expired"),
            Err(e) => tracing::error!(error = %e, "cannot end expired grants"),
        }
        match store.end_ssh_sessions_of_lost_proxies(&system()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(ended = n, "ssh sessions ended: their proxy stopped"),
            Err(e) => tracing::error!(error = %e, "cannot end the sessions of stopped proxies"),
        }
        for schedule in &schedules {
            scheduled_review(&store, schedule).await;
        }
        if let Err(e) = reviews(&store).await {
            tracing::error!(error = %e, "cannot run access review timers");
        }
        match store.vulns().timers(&system(), &sla).await {
            Ok(0) | Err(warden_store::StoreError::Raced) => {}
            Ok(n) => tracing::info!(
                alerts = n,
                "vulnerability SLA alerts and expired acceptances"
            ),
            Err(e) => tracing::error!(error = %e, "cannot run vulnerability timers"),
        }
    }
}

/// Opens a schedule's campaign when its turn has come (one replica does).
async fn scheduled_review(store: &Store, schedule: &crate::config::ReviewSchedule) {
    let ctx = system();
    let new = warden_store::NewAccessReview {
        name: format!(
            "Scheduled review of {}, {}",
            schedule.scope.as_text(),
            ctx.now.rfc3339_millis().get(..10).unwrap_or_default()
        ),
        scope: schedule.scope.clone(),
        reviewer: schedule.reviewer.clone(),
        due_at: ctx.now.plus(schedule.due),
        auto_revoke: schedule.auto_revoke,
    };
    let every = i64::try_from(schedule.every.as_millis()).unwrap_or(i64::MAX);
    match store.open_scheduled_review(&ctx, new, every).await {
        Ok(Some(review)) => {
            tracing::info!(review = %review.id, scope = %review.scope, "scheduled access review opened");
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = %e, scope = %schedule.scope.as_text(), "cannot open a scheduled access review")
        }
    }
}

async fn reviews(store: &Store) -> Result<(), warden_store::StoreError> {
    let ctx = system();
    let (due, remind) = store.reviews_needing_attention(ctx.now).await?;
    for id in due {
        let Some(review) = store.access_review(&id).await? else {
            continue;
        };
        let undecided: Vec<u32> = review
            .items
            .iter()
            .filter(|i| i.decision.is_none())
            .map(|i| i.n)
            .collect();
        if undecided.is_empty() {
            match store.close_access_review(&ctx, &id).await {
                Ok(_) | Err(warden_store::StoreError::Raced) => {}
                Err(e) => return Err(e),
            }
            continue;
        }
        let reason = "not reviewed by the due date";
        match store
            .decide_review_items(&ctx, &id, &undecided, true, reason)
            .await
        {
            Ok(_) => {
                store.verify_review(&ctx, &id).await?;
                tracing::info!(review = %id, revoked = undecided.len(), "access review due: undecided items revoked");
            }
            // Another replica got there first.
            Err(warden_store::StoreError::Raced) => {}
            Err(e) => return Err(e),
        }
    }
    for id in remind {
        store.remind_review(&ctx, &id).await?;
    }
    Ok(())
}

/// Keeps the vulnerability dashboard's figures (`warden_vuln_store::figures`): each second,
/// recomputes them when findings changed (after a pause of ten passes' time, so a million
/// findings cost at most a tenth of a core) or when older than `every`. Replicas share the
/// kept figures; one that finds them fresh does nothing. Runs until the task is dropped.
pub async fn vuln_figures(store: Arc<Store>, every: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let vulns = store.vulns();
        let (marker, kept) = match (vulns.changed_at().await, vulns.kept_figures_state().await) {
            (Ok(marker), Ok(kept)) => (marker, kept),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot read the state of the vulnerability figures");
                continue;
            }
        };
        let now = Timestamp::from_system(SystemTime::now());
        if !warden_vuln_store::figures::due(kept, marker, now, every) {
            continue;
        }
        match vulns.refresh_figures(now, marker).await {
            Ok(took) => {
                tracing::debug!(took_ms = took.as_millis(), "vulnerability figures computed")
            }
            Err(e) => tracing::error!(error = %e, "cannot compute the vulnerability figures"),
        }
    }
}
