//! Imports and disclosure reports: findings opened, reopened and fixed, all or nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::Timestamp;
use warden_vuln::{DEFAULT_TIER, ImportedFinding, Severity, SlaPolicy, SlaTiers};

use warden_store::write::Action;
use warden_store::{AuditContext, StoreError};

use super::*;

/// `($1, $2, …), (…)` for `rows` rows of `columns` values; on SQLite `(?, ?, …)`: SQLite
/// finds a numbered parameter's name by walking the list of names, so binding N of them
/// costs N² (80 s for 100,000 findings), while plain `?` parameters bind by position.
pub(super) fn placeholders(conn: &AnyConnection, rows: usize, columns: usize) -> String {
    let positional = conn.backend_name() == "SQLite";
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            if positional {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&(r * columns + c + 1).to_string());
            }
        }
        sql.push(')');
    }
    sql
}

/// A new finding's row, as bound values.
pub(super) struct NewRow {
    id: i64,
    subject: String,
    finding: ImportedFinding,
    state: FindingState,
    due_at: Option<i64>,
    next_alert_at: Option<i64>,
}

impl NewRow {
    /// A duplicate in the same file showed a fix: the new finding does not wait, and its clock
    /// runs from now like any new finding's.
    fn show_fix(&mut self, policy: &SlaPolicy, now: Timestamp, fixed_in: Option<String>) {
        if !self.finding.no_fix {
            return;
        }
        self.finding.no_fix = false;
        if self.finding.fixed_in.is_none() {
            self.finding.fixed_in = fixed_in;
        }
        self.state = live_state(self.finding.disclosed, false);
        (self.due_at, self.next_alert_at) = clocks(policy, now, self.finding.disclosed, 0, false);
    }
}

/// What an import needs to know of a finding it has seen before.
struct Known {
    state: String,
    effective: Option<i64>,
    /// Waiting for a fix, none seen yet.
    waiting: bool,
}

pub(super) async fn insert_findings(
    conn: &mut AnyConnection,
    asset: &str,
    now: Timestamp,
    rows: &[NewRow],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let texts: Vec<String> = chunk
            .iter()
            .map(|r| {
                let f = &r.finding;
                finding_text(&f.advisory, f.package.as_deref(), &f.title)
            })
            .collect();
        let ids = text_ids(conn, &texts).await?;
        let sql = format!(
            "INSERT INTO vuln_findings (id, asset, subject, advisory, aliases, package, location, \
             fixed_in, title, source, disclosed, cvss, effective, state, first_seen, clock_start, \
             due_at, next_alert_at, alerted, no_fix, text_id) VALUES {}",
            placeholders(conn, chunk.len(), 21)
        );
        let mut q = sqlx::query(&sql);
        for (r, text_id) in chunk.iter().zip(ids) {
            let f = &r.finding;
            let rank = f.disclosed.map(Severity::rank);
            q = q
                .bind(r.id)
                .bind(asset)
                .bind(r.subject.as_str())
                .bind(f.advisory.as_str())
                .bind(serde_json::to_string(&f.aliases).unwrap_or_else(|_| "[]".to_owned()))
                .bind(f.package.as_deref())
                .bind(f.location.as_deref())
                .bind(f.fixed_in.as_deref())
                .bind(f.title.as_str())
                .bind("scan")
                .bind(rank)
                .bind(f.cvss.as_deref())
                .bind(rank)
                .bind(r.state.as_str())
                .bind(now.as_millis())
                .bind(now.as_millis())
                .bind(r.due_at)
                .bind(r.next_alert_at)
                .bind(0_i64)
                .bind(i64::from(f.no_fix))
                .bind(text_id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The id in `vuln_texts` of each of `texts`, in order, adding those not there yet.
pub(super) async fn text_ids(
    conn: &mut AnyConnection,
    texts: &[String],
) -> Result<Vec<i64>, StoreError> {
    let wanted: BTreeSet<&str> = texts.iter().map(String::as_str).collect();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    let mut ids = BTreeMap::new();
    for chunk in wanted.chunks(CHUNK) {
        read_text_ids(conn, chunk, &mut ids).await?;
        let missing: Vec<&str> = chunk
            .iter()
            .copied()
            .filter(|t| !ids.contains_key(*t))
            .collect();
        if missing.is_empty() {
            continue;
        }
        // Imports write one at a time; a conflict would only be another writer's same text,
        // which the read below then finds.
        let sql = format!(
            "INSERT INTO vuln_texts (text) VALUES {} ON CONFLICT (text) DO NOTHING",
            placeholders(conn, missing.len(), 1)
        );
        let mut q = sqlx::query(&sql);
        for text in &missing {
            q = q.bind(*text);
        }
        q.execute(&mut *conn).await?;
        read_text_ids(conn, &missing, &mut ids).await?;
    }
    texts
        .iter()
        .map(|text| {
            ids.get(text.as_str())
                .copied()
                .ok_or_else(|| corrupt("a finding's text was written but is not found again"))
        })
        .collect()
}

async fn read_text_ids(
    conn: &mut AnyConnection,
    texts: &[&str],
    ids: &mut BTreeMap<String, i64>,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT id, text FROM vuln_texts WHERE text IN ({})",
        placeholders(conn, texts.len(), 1)
    );
    let mut q = sqlx::query(&sql);
    for text in texts {
        q = q.bind(*text);
    }
    for row in q.fetch_all(&mut *conn).await? {
        ids.insert(row.try_get("text")?, row.try_get("id")?);
    }
    Ok(())
}

pub(super) async fn insert_keys(
    conn: &mut AnyConnection,
    asset: &str,
    keys: &[(String, String, i64)],
) -> Result<(), StoreError> {
    for chunk in keys.chunks(CHUNK * 4) {
        let sql = format!(
            "INSERT INTO vuln_keys (asset, subject, advisory, finding_id) VALUES {}",
            placeholders(conn, chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for (subject, id, finding) in chunk {
            q = q
                .bind(asset)
                .bind(subject.as_str())
                .bind(id.as_str())
                .bind(*finding);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn insert_sightings(
    conn: &mut AnyConnection,
    asset: &str,
    scanner: &str,
    import: &str,
    ids: &BTreeSet<i64>,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = ids.iter().copied().collect();
    for chunk in ids.chunks(CHUNK * 4) {
        let sql = format!(
            "INSERT INTO vuln_sightings (asset, scanner, finding_id, import_id) VALUES {}",
            placeholders(conn, chunk.len(), 4)
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(asset).bind(scanner).bind(*id).bind(import);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Marks when an import first showed a fix for findings that waited for one.
async fn mark_fix_seen(
    conn: &mut AnyConnection,
    shown: &BTreeMap<i64, Option<String>>,
    now: Timestamp,
) -> Result<(), StoreError> {
    for (fid, fixed_in) in shown {
        sqlx::query(
            "UPDATE vuln_findings SET fix_seen_at = $1, fixed_in = COALESCE($2, fixed_in) \
             WHERE id = $3 AND no_fix = 1 AND fix_seen_at IS NULL",
        )
        .bind(now.as_millis())
        .bind(fixed_in.as_deref())
        .bind(*fid)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// `$first, $first+1, …` for `n` values.
pub(super) fn list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records the SLA policy in force if none is recorded yet (the first vulnerability write);
/// returns it then, for that write's audit event.
pub(super) async fn record_policy(
    conn: &mut AnyConnection,
    tiers: &SlaTiers,
    now: Timestamp,
) -> Result<Option<Value>, StoreError> {
    let row = sqlx::query("SELECT 1 AS one FROM vuln_sla_policy WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    if row.is_some() {
        return Ok(None);
    }
    let policy = tiers.describe();
    sqlx::query("INSERT INTO vuln_sla_policy (id, policy, applied_at) VALUES (1, $1, $2)")
        .bind(policy.to_string())
        .bind(now.as_millis())
        .execute(&mut *conn)
        .await?;
    Ok(Some(policy))
}

/// Re-computes the due dates of the live findings of one tier's assets (or, for the default
/// tier, of assets in tiers no longer configured too).
pub(super) async fn recompute_clocks(
    conn: &mut AnyConnection,
    tiers: &SlaTiers,
    tier: &str,
    asset: Option<&str>,
) -> Result<u64, StoreError> {
    let policy = tiers.policy(tier);
    // The default tier's policy also covers assets left in tiers no longer configured.
    let others: Vec<String> = tiers
        .names()
        .filter(|t| *t != DEFAULT_TIER)
        .map(str::to_owned)
        .collect();
    let mut changed = 0;
    for s in Severity::ALL {
        let limit = policy
            .limit(s)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (due, next) = match limit {
            Some(l) => (
                format!("clock_start + {l}"),
                format!(
                    "CASE alerted WHEN 0 THEN clock_start + {} WHEN 1 THEN clock_start + {l} ELSE NULL END",
                    l / 2
                ),
            ),
            None => ("NULL".to_owned(), "NULL".to_owned()),
        };
        let scope = match asset {
            Some(_) => "asset = $2".to_owned(),
            None if tier == DEFAULT_TIER && others.is_empty() => "1 = 1".to_owned(),
            None if tier == DEFAULT_TIER => format!(
                "asset IN (SELECT name FROM vuln_assets WHERE tier NOT IN ({}))",
                list(2, others.len())
            ),
            None => "asset IN (SELECT name FROM vuln_assets WHERE tier = $2)".to_owned(),
        };
        let sql = format!(
            "UPDATE vuln_findings SET due_at = {due}, next_alert_at = {next} \
             WHERE effective = $1 AND state IN ('open', 'triage', 'accepted') AND no_fix = 0 \
             AND {scope}"
        );
        let mut q = sqlx::query(&sql).bind(s.rank());
        match asset {
            Some(a) => q = q.bind(a),
            None if tier == DEFAULT_TIER => {
                for name in &others {
                    q = q.bind(name.as_str());
                }
            }
            None => q = q.bind(tier),
        }
        changed += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(changed)
}

impl Vulns<'_> {
    /// Imports a scan, all or nothing: new findings open (or go to triage, unrated) with their
    /// clocks starting now, or wait for a fix when their advisory has none; fixed ones that
    /// came back reopen (their first clock kept); the findings this scanner reported for the
    /// asset before and not now, which no other scanner reports either, are fixed now. One
    /// audit event records the import. Findings that waited for a fix and now show one have
    /// their clocks started from now once it commits, one `vuln.fix.available` event each.
    pub async fn import(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        new: NewImport,
    ) -> Result<ImportSummary, StoreError> {
        let id = warden_store::write::new_id();
        let backend = self.store.location().backend();
        let action = Action {
            name: Change::VulnImport.into(),
            target: format!("asset:{}", new.asset),
            details: json!({
                "import": id,
                "scanner": new.scanner,
                "format": new.format,
                "file": new.file_name,
                "sha256": new.sha256,
            }),
        };
        let now = ctx.now;
        let summary = self.store.audited_detailed(ctx, action, async |conn| {
            let recorded = record_policy(conn, tiers, now).await?;
            let tier = ensure_asset(conn, &new.asset, now).await?;
            let policy = tiers.policy(&tier);
            let mut keys: BTreeMap<(String, String), i64> = BTreeMap::new();
            let rows = sqlx::query("SELECT subject, advisory, finding_id FROM vuln_keys WHERE asset = $1")
                .bind(&new.asset)
                .fetch_all(&mut *conn)
                .await?;
            for row in rows {
                keys.insert(
                    (row.try_get("subject")?, row.try_get("advisory")?),
                    row.try_get("finding_id")?,
                );
            }
            let mut states: BTreeMap<i64, Known> = BTreeMap::new();
            if !keys.is_empty() {
                let rows = sqlx::query(
                    "SELECT id, state, effective, no_fix, fix_seen_at FROM vuln_findings WHERE asset = $1",
                )
                .bind(&new.asset)
                .fetch_all(&mut *conn)
                .await?;
                for row in rows {
                    states.insert(
                        row.try_get("id")?,
                        Known {
                            state: row.try_get("state")?,
                            effective: row.try_get("effective")?,
                            waiting: row.try_get::<i64, _>("no_fix")? != 0
                                && row.try_get::<Option<i64>, _>("fix_seen_at")?.is_none(),
                        },
                    );
                }
            }
            // Findings that waited for a fix and show one in this file, with its version.
            let mut fix_shown: BTreeMap<i64, Option<String>> = BTreeMap::new();
            // This file's new findings by number, to merge a duplicate's fix into.
            let mut fresh: BTreeMap<i64, usize> = BTreeMap::new();
            let mut next = next_finding_id(conn, backend).await?;
            let mut seen: BTreeSet<i64> = BTreeSet::new();
            let mut new_rows: Vec<NewRow> = Vec::new();
            let mut new_keys: Vec<(String, String, i64)> = Vec::new();
            for f in new.findings {
                let subject = f.subject();
                let ids = f.ids();
                let found = ids
                    .iter()
                    .find_map(|i| keys.get(&(subject.clone(), i.clone())).copied());
                let fid = match found {
                    Some(fid) => {
                        if !f.no_fix {
                            if let Some(&i) = fresh.get(&fid) {
                                // A duplicate in this file shows the fix the first one lacked.
                                if let Some(row) = new_rows.get_mut(i) {
                                    row.show_fix(policy, now, f.fixed_in.clone());
                                }
                            } else if states.get(&fid).is_some_and(|k| k.waiting) {
                                let slot = fix_shown.entry(fid).or_default();
                                if slot.is_none() {
                                    *slot = f.fixed_in.clone();
                                }
                            }
                        }
                        fid
                    }
                    None => {
                        let fid = next;
                        next += 1;
                        let state = live_state(f.disclosed, f.no_fix);
                        let (due_at, next_alert_at) = clocks(policy, now, f.disclosed, 0, f.no_fix);
                        fresh.insert(fid, new_rows.len());
                        new_rows.push(NewRow {
                            id: fid,
                            subject: subject.clone(),
                            finding: f,
                            state,
                            due_at,
                            next_alert_at,
                        });
                        fid
                    }
                };
                for i in ids {
                    let key = (subject.clone(), i);
                    if let std::collections::btree_map::Entry::Vacant(e) = keys.entry(key) {
                        new_keys.push((e.key().0.clone(), e.key().1.clone(), fid));
                        e.insert(fid);
                    }
                }
                seen.insert(fid);
            }
            insert_findings(conn, &new.asset, now, &new_rows).await?;
            insert_keys(conn, &new.asset, &new_keys).await?;
            // Mark when the fix was first seen; the clocks start once this commits.
            mark_fix_seen(conn, &fix_shown, now).await?;
            // Reopen the fixed ones that came back.
            let back: Vec<(i64, Option<i64>, bool)> = seen
                .iter()
                .filter_map(|fid| match states.get(fid) {
                    Some(k) if k.state == "fixed" => Some((*fid, k.effective, k.waiting)),
                    _ => None,
                })
                .collect();
            for (fid, effective, waiting) in &back {
                let state = live_state(severity(*effective)?, *waiting);
                sqlx::query("UPDATE vuln_findings SET state = $1, fixed_at = NULL WHERE id = $2")
                    .bind(state.as_str())
                    .bind(*fid)
                    .execute(&mut *conn)
                    .await?;
                add_history(conn, *fid, ctx, "reopened", &json!({ "import": id, "scanner": new.scanner })).await?;
            }
            sqlx::query("DELETE FROM vuln_sightings WHERE asset = $1 AND scanner = $2")
                .bind(&new.asset)
                .bind(&new.scanner)
                .execute(&mut *conn)
                .await?;
            insert_sightings(conn, &new.asset, &new.scanner, &id, &seen).await?;
            // Fix what no scanner reports any more.
            let gone = "asset = $1 AND source = 'scan' AND state IN ('open', 'triage', 'no_fix', 'accepted') \
                 AND NOT EXISTS (SELECT 1 FROM vuln_sightings s WHERE s.finding_id = vuln_findings.id)";
            let detail = json!({ "import": id, "scanner": new.scanner }).to_string();
            sqlx::query(&format!(
                "INSERT INTO vuln_history (finding_id, at, actor, change, detail) \
                 SELECT id, $2, $3, 'fixed', $4 FROM vuln_findings WHERE {gone}"
            ))
            .bind(&new.asset)
            .bind(now.as_millis())
            .bind(ctx.actor.to_string())
            .bind(&detail)
            .execute(&mut *conn)
            .await?;
            let fixed = sqlx::query(&format!(
                "UPDATE vuln_findings SET state = 'fixed', fixed_at = $2, next_alert_at = NULL WHERE {gone}"
            ))
            .bind(&new.asset)
            .bind(now.as_millis())
            .execute(&mut *conn)
            .await?
            .rows_affected();
            let summary = ImportSummary {
                findings: seen.len() as u64,
                opened: new_rows.len() as u64,
                reopened: back.len() as u64,
                fixed,
                fix_available: fix_shown.len() as u64,
                unchanged: (seen.len() - new_rows.len() - back.len()) as u64,
                id: id.clone(),
            };
            sqlx::query(
                "INSERT INTO vuln_imports (id, asset, scanner, format, file_name, sha256, imported_by, \
                 imported_at, findings, opened, reopened, fixed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&id)
            .bind(&new.asset)
            .bind(&new.scanner)
            .bind(&new.format)
            .bind(&new.file_name)
            .bind(&new.sha256)
            .bind(ctx.actor.to_string())
            .bind(now.as_millis())
            .bind(i64::try_from(summary.findings).unwrap_or(i64::MAX))
            .bind(i64::try_from(summary.opened).unwrap_or(i64::MAX))
            .bind(i64::try_from(summary.reopened).unwrap_or(i64::MAX))
            .bind(i64::try_from(summary.fixed).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
            let details = json!({
                "tier": tier,
                "sla_policy_recorded": recorded,
                "findings": summary.findings,
                "opened": summary.opened,
                "reopened": summary.reopened,
                "fixed": summary.fixed,
                "fix_available": summary.fix_available,
                "unchanged": summary.unchanged,
            });
            Ok((summary, details))
        })
        .await?;
        self.start_clocks(ctx, tiers).await?;
        Ok(summary)
    }

    /// Records a disclosure report as a finding of its own on the asset: in triage, or open
    /// with the reporter's rating.
    pub async fn report(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        report: NewReport,
    ) -> Result<Finding, StoreError> {
        let backend = self.store.location().backend();
        let action = Action {
            name: Change::VulnReport.into(),
            target: format!("asset:{}", report.asset),
            details: json!({
                "title": report.title,
                "severity": report.severity.map(Severity::as_str),
            }),
        };
        let now = ctx.now;
        self.store.audited_detailed(ctx, action, async |conn| {
            let recorded = record_policy(conn, tiers, now).await?;
            let tier = ensure_asset(conn, &report.asset, now).await?;
            let fid = next_finding_id(conn, backend).await?;
            let advisory = format!("WARDEN-REPORT-{fid}");
            let (due_at, next_alert_at) =
                clocks(tiers.policy(&tier), now, report.severity, 0, false);
            let rank = report.severity.map(Severity::rank);
            let text = finding_text(&advisory, None, &report.title);
            let text_id = text_ids(conn, &[text]).await?.into_iter().next();
            sqlx::query(
                "INSERT INTO vuln_findings (id, asset, subject, advisory, aliases, title, details, source, \
                 disclosed, effective, state, first_seen, clock_start, due_at, next_alert_at, alerted, \
                 text_id) \
                 VALUES ($1, $2, $3, $4, '[]', $5, $6, 'report', $7, $7, $8, $9, $9, $10, $11, 0, $12)",
            )
            .bind(fid)
            .bind(&report.asset)
            .bind(format!("report:{fid}"))
            .bind(&advisory)
            .bind(&report.title)
            .bind(&report.details)
            .bind(rank)
            .bind(live_state(report.severity, false).as_str())
            .bind(now.as_millis())
            .bind(due_at)
            .bind(next_alert_at)
            .bind(text_id)
            .execute(&mut *conn)
            .await?;
            insert_keys(conn, &report.asset, &[(format!("report:{fid}"), advisory, fid)]).await?;
            add_history(conn, fid, ctx, "reported", &json!({ "severity": report.severity.map(Severity::as_str) })).await?;
            let finding = fetch_finding(conn, fid).await?;
            Ok((
                finding,
                json!({ "finding": fid, "sla_policy_recorded": recorded }),
            ))
        })
        .await
    }
}
