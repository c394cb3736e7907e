//! Judgement on findings (re-rating, risk acceptance, false positives, reopening), asset
//! tiers, the SLA policy, and the timers that raise alerts and expire acceptances.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::Timestamp;
use warden_vuln::{Severity, SlaTiers};

use warden_store::write::Action;
use warden_store::write::Name;
use warden_store::{AuditContext, StoreError};

use super::*;

impl Vulns<'_> {
    /// Re-rates a finding, with a justification. Whether the clock restarts from now is the
    /// configured policy choice (`restart_clock_on_rerate`), recorded with the change.
    pub async fn rate(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        id: i64,
        to: Severity,
        reason: &str,
    ) -> Result<Finding, StoreError> {
        let restart = tiers.restart_clock_on_rerate;
        let action = Action {
            name: Change::VulnRate.into(),
            target: format!("finding:{id}"),
            details: self.with_seen(
                json!({ "severity": to.as_str(), "reason": reason, "restart_clock": restart }),
            ),
        };
        let now = ctx.now;
        self.store.audited_detailed(ctx, action, async |conn| {
            let f = decided_on(conn, id, self.seen).await?;
            if matches!(f.state, FindingState::Fixed | FindingState::FalsePositive) {
                return Err(StoreError::Conflict(format!(
                    "finding {id} is {}: only a live finding can be re-rated",
                    f.state.as_str()
                )));
            }
            let tier = ensure_asset(conn, &f.asset, now).await?;
            let clock_start = if restart { now } else { f.clock_start };
            let (due_at, next_alert_at) =
                clocks(tiers.policy(&tier), clock_start, Some(to), 0, f.no_fix);
            let state = match f.state {
                FindingState::Triage => live_state(Some(to), f.no_fix),
                other => other,
            };
            sqlx::query(
                "UPDATE vuln_findings SET effective = $1, state = $2, clock_start = $3, due_at = $4, \
                 next_alert_at = $5, alerted = 0, rated_by = $6, rated_at = $7, rating_reason = $8 \
                 WHERE id = $9",
            )
            .bind(to.rank())
            .bind(state.as_str())
            .bind(clock_start.as_millis())
            .bind(due_at)
            .bind(next_alert_at)
            .bind(ctx.actor.to_string())
            .bind(now.as_millis())
            .bind(reason)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            let detail = json!({
                "from": f.effective.map(Severity::as_str),
                "to": to.as_str(),
                "reason": reason,
                "restart_clock": restart,
                "due_at": due_at.map(|d| Timestamp::from_millis(d).rfc3339_millis()),
            });
            add_history(conn, id, ctx, "rated", &detail).await?;
            Ok((fetch_finding(conn, id).await?, detail))
        })
        .await
    }

    /// Accepts a live finding's risk until `until` (at most a year ahead), with a
    /// justification; the actor is the approver. It reopens by itself at `until`.
    pub async fn accept(
        &self,
        ctx: &AuditContext,
        id: i64,
        until: Timestamp,
        reason: &str,
    ) -> Result<Finding, StoreError> {
        let action = Action {
            name: Change::VulnAccept.into(),
            target: format!("finding:{id}"),
            details: self.with_seen(json!({ "until": until.rfc3339_millis(), "reason": reason })),
        };
        let now = ctx.now;
        self.store.audited(ctx, action, async |conn| {
            if until <= now {
                return Err(StoreError::Conflict(format!(
                    "the acceptance must end in the future, not {}",
                    until.rfc3339_millis()
                )));
            }
            if until.as_millis() - now.as_millis() > MAX_ACCEPTANCE_MS {
                return Err(StoreError::Conflict(
                    "a risk is accepted for at most 366 days at a time".to_owned(),
                ));
            }
            let f = decided_on(conn, id, self.seen).await?;
            if !(f.state.is_live() || f.state == FindingState::Accepted) {
                return Err(StoreError::Conflict(format!(
                    "finding {id} is {}: only a live finding's risk can be accepted",
                    f.state.as_str()
                )));
            }
            sqlx::query(
                "UPDATE vuln_findings SET state = 'accepted', accepted_until = $1, decided_by = $2, \
                 decided_at = $3, decision_reason = $4 WHERE id = $5",
            )
            .bind(until.as_millis())
            .bind(ctx.actor.to_string())
            .bind(now.as_millis())
            .bind(reason)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            add_history(conn, id, ctx, "accepted", &json!({ "until": until.rfc3339_millis(), "reason": reason, "from": f.state.as_str() })).await?;
            fetch_finding(conn, id).await
        })
        .await
    }

    /// Marks a live finding a false positive, with a justification.
    pub async fn false_positive(
        &self,
        ctx: &AuditContext,
        id: i64,
        reason: &str,
    ) -> Result<Finding, StoreError> {
        let action = Action {
            name: Change::VulnFalsePositive.into(),
            target: format!("finding:{id}"),
            details: self.with_seen(json!({ "reason": reason })),
        };
        let now = ctx.now;
        self.store.audited(ctx, action, async |conn| {
            let f = decided_on(conn, id, self.seen).await?;
            if !(f.state.is_live() || f.state == FindingState::Accepted) {
                return Err(StoreError::Conflict(format!(
                    "finding {id} is {}: only a live finding can be called a false positive",
                    f.state.as_str()
                )));
            }
            sqlx::query(
                "UPDATE vuln_findings SET state = 'false_positive', accepted_until = NULL, decided_by = $1, \
                 decided_at = $2, decision_reason = $3, next_alert_at = NULL WHERE id = $4",
            )
            .bind(ctx.actor.to_string())
            .bind(now.as_millis())
            .bind(reason)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            add_history(conn, id, ctx, "false_positive", &json!({ "reason": reason, "from": f.state.as_str() })).await?;
            fetch_finding(conn, id).await
        })
        .await
    }

    /// Reopens an accepted, false-positive or fixed finding by hand, with a justification. Its
    /// clock is the one it had: time spent accepted counts.
    pub async fn reopen(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        id: i64,
        reason: &str,
    ) -> Result<Finding, StoreError> {
        let action = Action {
            name: Change::VulnReopen.into(),
            target: format!("finding:{id}"),
            details: self.with_seen(json!({ "reason": reason })),
        };
        self.store
            .audited(ctx, action, async |conn| {
                let f = decided_on(conn, id, self.seen).await?;
                if f.state.is_live() {
                    return Err(StoreError::Conflict(format!(
                        "finding {id} is already {}",
                        f.state.as_str()
                    )));
                }
                reopen(
                    conn,
                    ctx,
                    tiers,
                    &f,
                    "reopened",
                    &json!({ "reason": reason, "from": f.state.as_str() }),
                )
                .await?;
                fetch_finding(conn, id).await
            })
            .await
    }

    /// Puts an asset in an SLA tier (which must be configured) and re-computes its live
    /// findings' due dates.
    pub async fn set_tier(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        asset: &str,
        tier: &str,
    ) -> Result<VulnAsset, StoreError> {
        let action = Action {
            name: Change::VulnAssetTier.into(),
            target: format!("asset:{asset}"),
            details: json!({ "tier": tier }),
        };
        let now = ctx.now;
        self.store.audited_detailed(ctx, action, async |conn| {
            if !tiers.has(tier) {
                let names: Vec<&str> = tiers.names().collect();
                return Err(StoreError::Conflict(format!(
                    "unknown SLA tier `{tier}`: configured tiers are {}",
                    names.join(", ")
                )));
            }
            let recorded = record_policy(conn, tiers, now).await?;
            let from = ensure_asset(conn, asset, now).await?;
            sqlx::query("UPDATE vuln_assets SET tier = $1 WHERE name = $2")
                .bind(tier)
                .bind(asset)
                .execute(&mut *conn)
                .await?;
            let changed = recompute_clocks(conn, tiers, tier, Some(asset)).await?;
            let assets = assets(conn, Some(asset), now).await?;
            let a = assets
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::NotFound {
                    kind: "asset",
                    name: asset.to_owned(),
                })?;
            Ok((
                a,
                json!({ "from": from, "findings_recomputed": changed, "sla_policy_recorded": recorded }),
            ))
        })
        .await
    }

    /// Records the SLA configuration and, when it differs from the one recorded, applies it
    /// to every live finding's due date. Returns whether it changed.
    pub async fn apply_sla(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
    ) -> Result<bool, StoreError> {
        let policy = tiers.describe().to_string();
        let row = sqlx::query("SELECT policy FROM vuln_sla_policy WHERE id = 1")
            .fetch_optional(self.store.pool())
            .await?;
        let previous: Option<String> = row.map(|r| r.try_get("policy")).transpose()?;
        // Nothing recorded yet: the first vulnerability write records the policy in force
        // with its own event, so a server that never sees a finding logs nothing of it.
        let Some(previous) = previous else {
            return Ok(false);
        };
        if previous == policy {
            return Ok(false);
        }
        let action = Action {
            name: Change::VulnSlaPolicy.into(),
            target: "vuln:sla".to_owned(),
            details: json!({
                "policy": tiers.describe(),
                "previous": serde_json::from_str::<Value>(&previous).ok(),
            }),
        };
        let now = ctx.now;
        self.store
            .audited_detailed(ctx, action, async |conn| {
                let mut changed = 0;
                for tier in tiers.names() {
                    changed += recompute_clocks(conn, tiers, tier, None).await?;
                }
                sqlx::query("DELETE FROM vuln_sla_policy WHERE id = 1")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO vuln_sla_policy (id, policy, applied_at) VALUES (1, $1, $2)",
                )
                .bind(&policy)
                .bind(now.as_millis())
                .execute(&mut *conn)
                .await?;
                Ok(((), json!({ "findings_recomputed": changed })))
            })
            .await?;
        Ok(true)
    }

    /// Starts the clocks of findings that waited for a fix and whose fix an import has shown
    /// (`fix_seen_at`), from when it was seen: one `vuln.fix.available` event each, carrying
    /// the new due date. An import calls it as soon as it commits; the timers call it too, so
    /// a server stopped in between catches up. Returns how many clocks it started.
    pub async fn start_clocks(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
    ) -> Result<usize, StoreError> {
        let mut started = 0;
        loop {
            let sql = format!(
                "SELECT {FINDING_COLUMNS} FROM vuln_findings \
                 WHERE no_fix = 1 AND fix_seen_at IS NOT NULL ORDER BY fix_seen_at, id LIMIT 500"
            );
            let rows = sqlx::query(&sql).fetch_all(self.store.pool()).await?;
            if rows.is_empty() {
                return Ok(started);
            }
            for row in rows {
                let f = finding_from_row(&row)?;
                let Some(seen) = f.fix_seen_at else { continue };
                let action = Action {
                    name: Change::VulnFixAvailable.into(),
                    target: format!("finding:{}", f.id),
                    details: json!({
                        "asset": f.asset,
                        "advisory": f.advisory,
                        "title": f.title,
                        "severity": f.effective.map(Severity::as_str),
                        "fixed_in": f.fixed_in,
                        "fix_seen_at": seen.rfc3339_millis(),
                    }),
                };
                let made = self
                    .store
                    .audited_detailed(ctx, action, async |conn| {
                        let tier = ensure_asset(conn, &f.asset, ctx.now).await?;
                        let state = match f.state {
                            FindingState::NoFix => FindingState::Open,
                            other => other,
                        };
                        let (due_at, next_alert_at) =
                            if state.is_live() || state == FindingState::Accepted {
                                clocks(tiers.policy(&tier), seen, f.effective, 0, false)
                            } else {
                                (None, None)
                            };
                        // Only while it still waits: another replica's timer may have started
                        // it already, and then nothing is written or recorded.
                        let changed = sqlx::query(
                            "UPDATE vuln_findings SET no_fix = 0, state = $1, clock_start = $2, \
                             due_at = $3, next_alert_at = $4, alerted = 0 \
                             WHERE id = $5 AND no_fix = 1",
                        )
                        .bind(state.as_str())
                        .bind(seen.as_millis())
                        .bind(due_at)
                        .bind(next_alert_at)
                        .bind(f.id)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                        if changed == 0 {
                            return Err(StoreError::Raced);
                        }
                        let detail = json!({
                            "fixed_in": f.fixed_in,
                            "clock_start": seen.rfc3339_millis(),
                            "due_at": due_at.map(|d| Timestamp::from_millis(d).rfc3339_millis()),
                            "state": state.as_str(),
                        });
                        add_history(conn, f.id, ctx, "fix_available", &detail).await?;
                        Ok(((), detail))
                    })
                    .await;
                match made {
                    Ok(()) => started += 1,
                    Err(StoreError::Raced) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Starts the clocks whose fix appeared ([`Vulns::start_clocks`]), sends the SLA alerts
    /// that are due (an audit event each, which webhooks carry: `vuln.sla.half` at 50 %,
    /// `vuln.sla.breach` at 100 %) and reopens findings whose acceptance expired
    /// (`vuln.accept.expire`). At most 100 alerts and 100 expiries per call.
    pub async fn timers(&self, ctx: &AuditContext, tiers: &SlaTiers) -> Result<usize, StoreError> {
        let started = self.start_clocks(ctx, tiers).await?;
        let now = ctx.now.as_millis();
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM vuln_findings \
             WHERE state = 'open' AND next_alert_at <= $1 ORDER BY next_alert_at LIMIT 100"
        );
        let due = sqlx::query(&sql)
            .bind(now)
            .fetch_all(self.store.pool())
            .await?
            .iter()
            .map(finding_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // The alerts are written together, so the writer commits them in a batch or two
        // rather than one commit each: a second of alerts must not hold the writer (and, on
        // SQLite, the database's write lock) for a hundred commits in a row.
        let alerts = due.into_iter().filter_map(|f| {
            let due_at = f.due_at?;
            let level = if due_at.as_millis() <= now { 2 } else { 1 };
            let action = Action {
                name: Name::Change(if level == 2 {
                    Change::VulnSlaBreach
                } else {
                    Change::VulnSlaHalf
                }),
                target: format!("finding:{}", f.id),
                details: json!({
                    "asset": f.asset,
                    "advisory": f.advisory,
                    "title": f.title,
                    "severity": f.effective.map(Severity::as_str),
                    "due_at": due_at.rfc3339_millis(),
                }),
            };
            let next = (level == 1).then(|| due_at.as_millis());
            Some(self.store.audited(ctx, action, async move |conn| {
                sqlx::query(
                    "UPDATE vuln_findings SET alerted = $1, next_alert_at = $2 \
                     WHERE id = $3 AND state = 'open'",
                )
                .bind(level)
                .bind(next)
                .bind(f.id)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }))
        });
        let mut done = started;
        for written in futures_util::future::join_all(alerts).await {
            written?;
            done += 1;
        }
        let expired = sqlx::query(
            "SELECT id FROM vuln_findings WHERE state = 'accepted' AND accepted_until <= $1 ORDER BY accepted_until LIMIT 100",
        )
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        for row in expired {
            let id: i64 = row.try_get("id")?;
            let action = Action {
                name: Change::VulnAcceptExpire.into(),
                target: format!("finding:{id}"),
                details: Value::Null,
            };
            self.store.audited(ctx, action, async |conn| {
                let f = fetch_finding(conn, id).await?;
                if f.state != FindingState::Accepted {
                    return Ok(());
                }
                let detail = json!({ "accepted_until": f.accepted_until.map(|t| t.rfc3339_millis()), "approved_by": f.decided_by });
                reopen(conn, ctx, tiers, &f, "accept_expired", &detail).await
            })
            .await?;
            done += 1;
        }
        Ok(done)
    }

    /// A decision's audit details, with how many changes the decider read when it said.
    fn with_seen(&self, mut details: Value) -> Value {
        if let (Some(seen), Some(map)) = (self.seen, details.as_object_mut()) {
            map.insert("seen_changes".to_owned(), json!(seen));
        }
        details
    }
}

/// The finding a decision is about; with `seen`, refused as stale if its history no longer has
/// that many changes (checked in the decision's transaction).
async fn decided_on(
    conn: &mut AnyConnection,
    id: i64,
    seen: Option<i64>,
) -> Result<Finding, StoreError> {
    let f = fetch_finding(conn, id).await?;
    if let Some(seen) = seen {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_history WHERE finding_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        let now: i64 = row.try_get("n")?;
        if now != seen {
            return Err(StoreError::Stale(format!(
                "finding {id} changed since it was read ({} then, {now} now): read it again, \
                 then decide",
                warden_model::count(u64::try_from(seen).unwrap_or(0), "change", "changes")
            )));
        }
    }
    Ok(f)
}

/// Puts a finding back to open (or triage) with its clocks re-computed from its first clock.
pub(super) async fn reopen(
    conn: &mut AnyConnection,
    ctx: &AuditContext,
    tiers: &SlaTiers,
    f: &Finding,
    change: &str,
    detail: &Value,
) -> Result<(), StoreError> {
    let tier = ensure_asset(conn, &f.asset, ctx.now).await?;
    let (due_at, next_alert_at) = clocks(
        tiers.policy(&tier),
        f.clock_start,
        f.effective,
        f.alerted,
        f.no_fix,
    );
    sqlx::query(
        "UPDATE vuln_findings SET state = $1, fixed_at = NULL, accepted_until = NULL, due_at = $2, \
         next_alert_at = $3 WHERE id = $4",
    )
    .bind(live_state(f.effective, f.no_fix).as_str())
    .bind(due_at)
    .bind(next_alert_at)
    .bind(f.id)
    .execute(&mut *conn)
    .await?;
    add_history(conn, f.id, ctx, change, detail).await
}
