//! Vulnerability findings with severity SLAs: imports that open, reopen and fix findings,
//! judgement (re-rating, risk acceptance, false positives), disclosure reports, SLA alerts and
//! the figures that prove remediation times.
//!
//! Identity: a finding is its asset, its subject (a package purl without qualifiers, a code
//! fingerprint or location) and any id of its advisory; `vuln_keys` indexes every (asset,
//! subject, id), so a CVE from one scanner and its GHSA from another are one finding. Severity
//! is never part of it. Clocks are timestamps: `due_at` is the clock's start plus the limit of
//! the asset tier's policy for the effective severity; an unrated finding is in triage and has
//! no due date, while its clock runs from when it was found.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Change;
use warden_model::Timestamp;
use warden_vuln::{DEFAULT_TIER, ImportedFinding, Severity, SlaPolicy, SlaTiers};

use crate::audit::Action;
use crate::audit::Name;
use crate::{AuditContext, Backend, Store, StoreError};

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingState {
    /// Rated and waiting for remediation; its clock runs.
    Open,
    /// Unrated: waiting for someone to rate it. Its clock runs; it has no due date yet.
    Triage,
    /// No scanner reports it any more.
    Fixed,
    /// Risk accepted until a date, after which it reopens.
    Accepted,
    /// Not a real finding.
    FalsePositive,
}

impl FindingState {
    /// Every state.
    pub const ALL: [FindingState; 5] = [
        FindingState::Open,
        FindingState::Triage,
        FindingState::Fixed,
        FindingState::Accepted,
        FindingState::FalsePositive,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::Open => "open",
            FindingState::Triage => "triage",
            FindingState::Fixed => "fixed",
            FindingState::Accepted => "accepted",
            FindingState::FalsePositive => "false_positive",
        }
    }

    /// A state by name.
    pub fn from_name(s: &str) -> Option<FindingState> {
        FindingState::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Its number.
    pub id: i64,
    /// The asset it is on.
    pub asset: String,
    /// What it is on (identity).
    pub subject: String,
    /// The advisory's id as first reported.
    pub advisory: String,
    /// Its other ids.
    pub aliases: Vec<String>,
    /// The package's purl.
    pub package: Option<String>,
    /// Where in code.
    pub location: Option<String>,
    /// The version that fixes it.
    pub fixed_in: Option<String>,
    /// One line.
    pub title: String,
    /// A disclosure report's text.
    pub details: Option<String>,
    /// `scan` or `report`.
    pub source: String,
    /// The rating the advisory disclosed; `None` unrated.
    pub disclosed: Option<Severity>,
    /// The CVSS vector of the disclosed rating.
    pub cvss: Option<String>,
    /// The rating the SLA runs on (the disclosed one, or a re-rating).
    pub effective: Option<Severity>,
    /// Where it stands.
    pub state: FindingState,
    /// When it was first reported.
    pub first_seen: Timestamp,
    /// When its clock started.
    pub clock_start: Timestamp,
    /// When it is due; `None` without a deadline (unrated, informational).
    pub due_at: Option<Timestamp>,
    /// Which SLA alerts went: 0 none, 1 the 50 % one, 2 the 100 % one.
    pub alerted: i64,
    /// When it was fixed.
    pub fixed_at: Option<Timestamp>,
    /// Until when its risk is accepted.
    pub accepted_until: Option<Timestamp>,
    /// Who accepted it or called it a false positive.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Why.
    pub decision_reason: Option<String>,
    /// Who re-rated it last.
    pub rated_by: Option<String>,
    /// When.
    pub rated_at: Option<Timestamp>,
    /// Why.
    pub rating_reason: Option<String>,
    /// The scanners that report it now (filled by [`Store::vuln_finding`]).
    pub scanners: Vec<String>,
    /// Its changes, oldest first (filled by [`Store::vuln_finding`]).
    pub history: Vec<FindingChange>,
}

impl Finding {
    /// Whether it is open and past its due date at `now`.
    pub fn overdue(&self, now: Timestamp) -> bool {
        self.state == FindingState::Open && self.due_at.is_some_and(|d| d <= now)
    }
}

/// One change of a finding.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingChange {
    /// When.
    pub at: Timestamp,
    /// Who (`user:alice`, `system`).
    pub actor: String,
    /// `fixed`, `reopened`, `rated`, `accepted`, `accept_expired`, `false_positive`,
    /// `reported`.
    pub change: String,
    /// What changed.
    pub detail: Value,
}

/// A scan to import.
#[derive(Debug, Clone)]
pub struct NewImport {
    /// The asset scanned (created in the default tier if new).
    pub asset: String,
    /// The scanner's name; a re-import with the same asset and scanner closes what is gone.
    pub scanner: String,
    /// The format it was read as.
    pub format: String,
    /// The file's name, for the record.
    pub file_name: String,
    /// The file's SHA-256, hex.
    pub sha256: String,
    /// What it reported.
    pub findings: Vec<ImportedFinding>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The import's id.
    pub id: String,
    /// Findings in the file, after merging duplicates.
    pub findings: u64,
    /// New findings.
    pub opened: u64,
    /// Fixed findings that came back.
    pub reopened: u64,
    /// Findings this scanner no longer reports and no other scanner does.
    pub fixed: u64,
    /// Findings reported before and still.
    pub unchanged: u64,
}

/// A disclosure report to record as a finding.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// The asset it is about.
    pub asset: String,
    /// One line.
    pub title: String,
    /// The report.
    pub details: String,
    /// The reporter's rating, if any; without one it goes to triage.
    pub severity: Option<Severity>,
}

/// Which findings to list.
#[derive(Debug, Clone)]
pub struct FindingFilter {
    /// On this asset.
    pub asset: Option<String>,
    /// At least this severity (effective).
    pub severity: Option<Severity>,
    /// In these states; empty: open and triage.
    pub states: Vec<FindingState>,
    /// Only open findings past their due date, most overdue first.
    pub overdue: bool,
    /// The time "overdue" is judged at.
    pub now: Timestamp,
    /// The cursor from the previous page.
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// A page of findings.
#[derive(Debug, Clone)]
pub struct FindingPage {
    /// The findings.
    pub findings: Vec<Finding>,
    /// How many match in all.
    pub total: i64,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
}

/// An asset findings are on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnAsset {
    /// Its name.
    pub name: String,
    /// Its SLA tier.
    pub tier: String,
    /// Open findings (open and triage).
    pub open: i64,
    /// Overdue findings.
    pub overdue: i64,
}

/// Remediation figures.
#[derive(Debug, Clone, PartialEq)]
pub struct VulnStats {
    /// Open findings per effective severity.
    pub open: BTreeMap<Severity, i64>,
    /// Findings in triage (unrated).
    pub triage: i64,
    /// Open findings past their due date.
    pub overdue: i64,
    /// Findings whose risk is accepted.
    pub accepted: i64,
    /// Findings fixed in the period, per severity, with their mean time to remediate in
    /// seconds.
    pub fixed: BTreeMap<Severity, (i64, f64)>,
    /// Findings with a deadline fixed in the period.
    pub due_fixed: i64,
    /// Of those, fixed by their due date.
    pub due_fixed_on_time: i64,
    /// Findings whose due date passed in the period and are still open.
    pub due_missed_open: i64,
}

impl VulnStats {
    /// The share of findings due in the period that were met: fixed on time over fixed with a
    /// deadline plus still open past one; `None` when none was due.
    pub fn compliance(&self) -> Option<f64> {
        let all = self.due_fixed + self.due_missed_open;
        (all > 0).then(|| self.due_fixed_on_time as f64 / all as f64)
    }
}

const FINDING_COLUMNS: &str = "id, asset, subject, advisory, aliases, package, location, fixed_in, \
     title, details, source, disclosed, cvss, effective, state, first_seen, clock_start, due_at, \
     alerted, fixed_at, accepted_until, decided_by, decided_at, decision_reason, rated_by, rated_at, \
     rating_reason";

/// Rows per multi-row INSERT: under SQLite's 32,766 bound parameters at 20 columns.
const CHUNK: usize = 1000;

/// How long a risk may be accepted for at once.
const MAX_ACCEPTANCE_MS: i64 = 366 * 24 * 3600 * 1000;

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

fn severity(rank: Option<i64>) -> Result<Option<Severity>, StoreError> {
    rank.map(|r| Severity::from_rank(r).ok_or_else(|| corrupt(format!("severity rank {r}"))))
        .transpose()
}

fn finding_from_row(row: &AnyRow) -> Result<Finding, StoreError> {
    let state: String = row.try_get("state")?;
    let aliases: String = row.try_get("aliases")?;
    Ok(Finding {
        id: row.try_get("id")?,
        asset: row.try_get("asset")?,
        subject: row.try_get("subject")?,
        advisory: row.try_get("advisory")?,
        aliases: serde_json::from_str(&aliases).map_err(corrupt)?,
        package: row.try_get("package")?,
        location: row.try_get("location")?,
        fixed_in: row.try_get("fixed_in")?,
        title: row.try_get("title")?,
        details: row.try_get("details")?,
        source: row.try_get("source")?,
        disclosed: severity(row.try_get("disclosed")?)?,
        cvss: row.try_get("cvss")?,
        effective: severity(row.try_get("effective")?)?,
        state: FindingState::from_name(&state)
            .ok_or_else(|| corrupt(format!("finding state `{state}`")))?,
        first_seen: Timestamp::from_millis(row.try_get("first_seen")?),
        clock_start: Timestamp::from_millis(row.try_get("clock_start")?),
        due_at: ts(row.try_get("due_at")?),
        alerted: row.try_get("alerted")?,
        fixed_at: ts(row.try_get("fixed_at")?),
        accepted_until: ts(row.try_get("accepted_until")?),
        decided_by: row.try_get("decided_by")?,
        decided_at: ts(row.try_get("decided_at")?),
        decision_reason: row.try_get("decision_reason")?,
        rated_by: row.try_get("rated_by")?,
        rated_at: ts(row.try_get("rated_at")?),
        rating_reason: row.try_get("rating_reason")?,
        scanners: Vec::new(),
        history: Vec::new(),
    })
}

/// A finding's due date and next alert time: half-way until the 50 % alert went, then the due
/// date, then none.
fn clocks(
    policy: &SlaPolicy,
    clock_start: Timestamp,
    effective: Option<Severity>,
    alerted: i64,
) -> (Option<i64>, Option<i64>) {
    let Some(limit) = effective.and_then(|s| policy.limit(s)) else {
        return (None, None);
    };
    let limit_ms = i64::try_from(limit.as_millis()).unwrap_or(i64::MAX);
    let due = clock_start.as_millis().saturating_add(limit_ms);
    let next = match alerted {
        0 => Some(clock_start.as_millis().saturating_add(limit_ms / 2)),
        1 => Some(due),
        _ => None,
    };
    (Some(due), next)
}

/// The state a finding goes back to when it is live again: triage while unrated.
fn live_state(effective: Option<Severity>) -> FindingState {
    if effective.is_some() {
        FindingState::Open
    } else {
        FindingState::Triage
    }
}

/// The tier of an asset, creating the asset in the default tier if it is new.
async fn ensure_asset(
    conn: &mut AnyConnection,
    asset: &str,
    now: Timestamp,
) -> Result<String, StoreError> {
    if let Some(row) = sqlx::query("SELECT tier FROM vuln_assets WHERE name = $1")
        .bind(asset)
        .fetch_optional(&mut *conn)
        .await?
    {
        return Ok(row.try_get("tier")?);
    }
    sqlx::query("INSERT INTO vuln_assets (name, tier, created_at) VALUES ($1, $2, $3)")
        .bind(asset)
        .bind(DEFAULT_TIER)
        .bind(now.as_millis())
        .execute(&mut *conn)
        .await?;
    Ok(DEFAULT_TIER.to_owned())
}

/// The next free finding number. On PostgreSQL an advisory lock held to the end of the
/// transaction keeps two servers from taking the same numbers.
async fn next_finding_id(conn: &mut AnyConnection, backend: Backend) -> Result<i64, StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(7400913)")
            .execute(&mut *conn)
            .await?;
    }
    let row = sqlx::query("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS top FROM vuln_findings")
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get::<i64, _>("top")? + 1)
}

async fn fetch_finding(conn: &mut AnyConnection, id: i64) -> Result<Finding, StoreError> {
    let sql = format!("SELECT {FINDING_COLUMNS} FROM vuln_findings WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            kind: "finding",
            name: id.to_string(),
        })?;
    finding_from_row(&row)
}

async fn add_history(
    conn: &mut AnyConnection,
    id: i64,
    ctx: &AuditContext,
    change: &str,
    detail: &Value,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO vuln_history (finding_id, at, actor, change, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(ctx.now.as_millis())
    .bind(ctx.actor.to_string())
    .bind(change)
    .bind(detail.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `($1, $2, …), (…)` for `rows` rows of `columns` values; on SQLite `(?, ?, …)`: SQLite
/// finds a numbered parameter's name by walking the list of names, so binding N of them
/// costs N² (80 s for 100,000 findings), while plain `?` parameters bind by position.
fn placeholders(conn: &AnyConnection, rows: usize, columns: usize) -> String {
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
struct NewRow {
    id: i64,
    subject: String,
    finding: ImportedFinding,
    state: FindingState,
    due_at: Option<i64>,
    next_alert_at: Option<i64>,
}

async fn insert_findings(
    conn: &mut AnyConnection,
    asset: &str,
    now: Timestamp,
    rows: &[NewRow],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO vuln_findings (id, asset, subject, advisory, aliases, package, location, \
             fixed_in, title, source, disclosed, cvss, effective, state, first_seen, clock_start, \
             due_at, next_alert_at, alerted) VALUES {}",
            placeholders(conn, chunk.len(), 19)
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
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
                .bind(0_i64);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_keys(
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

async fn insert_sightings(
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

/// `$first, $first+1, …` for `n` values.
fn list(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records the SLA policy in force if none is recorded yet (the first vulnerability write);
/// returns it then, for that write's audit event.
async fn record_policy(
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
async fn recompute_clocks(
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
             WHERE effective = $1 AND state IN ('open', 'triage', 'accepted') AND {scope}"
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

impl Store {
    /// Imports a scan, all or nothing: new findings open (or go to triage, unrated) with their
    /// clocks starting now; fixed ones that came back reopen (their first clock kept); the
    /// findings this scanner reported for the asset before and not now, which no other
    /// scanner reports either, are fixed now. One audit event records the import.
    pub async fn vuln_import(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        new: NewImport,
    ) -> Result<ImportSummary, StoreError> {
        let id = crate::users::new_id();
        let backend = self.location().backend();
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
        self.audited_detailed(ctx, action, async |conn| {
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
            let mut states: BTreeMap<i64, (String, Option<i64>)> = BTreeMap::new();
            if !keys.is_empty() {
                let rows = sqlx::query("SELECT id, state, effective FROM vuln_findings WHERE asset = $1")
                    .bind(&new.asset)
                    .fetch_all(&mut *conn)
                    .await?;
                for row in rows {
                    states.insert(row.try_get("id")?, (row.try_get("state")?, row.try_get("effective")?));
                }
            }
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
                    Some(fid) => fid,
                    None => {
                        let fid = next;
                        next += 1;
                        let state = live_state(f.disclosed);
                        let (due_at, next_alert_at) = clocks(policy, now, f.disclosed, 0);
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
            // Reopen the fixed ones that came back.
            let back: Vec<(i64, Option<i64>)> = seen
                .iter()
                .filter_map(|fid| match states.get(fid) {
                    Some((state, effective)) if state == "fixed" => Some((*fid, *effective)),
                    _ => None,
                })
                .collect();
            for (fid, effective) in &back {
                let state = live_state(severity(*effective)?);
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
            let gone = "asset = $1 AND source = 'scan' AND state IN ('open', 'triage', 'accepted') \
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
                "unchanged": summary.unchanged,
            });
            Ok((summary, details))
        })
        .await
    }

    /// Records a disclosure report as a finding of its own on the asset: in triage, or open
    /// with the reporter's rating.
    pub async fn vuln_report(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        report: NewReport,
    ) -> Result<Finding, StoreError> {
        let backend = self.location().backend();
        let action = Action {
            name: Change::VulnReport.into(),
            target: format!("asset:{}", report.asset),
            details: json!({
                "title": report.title,
                "severity": report.severity.map(Severity::as_str),
            }),
        };
        let now = ctx.now;
        self.audited_detailed(ctx, action, async |conn| {
            let recorded = record_policy(conn, tiers, now).await?;
            let tier = ensure_asset(conn, &report.asset, now).await?;
            let fid = next_finding_id(conn, backend).await?;
            let advisory = format!("WARDEN-REPORT-{fid}");
            let (due_at, next_alert_at) = clocks(tiers.policy(&tier), now, report.severity, 0);
            let rank = report.severity.map(Severity::rank);
            sqlx::query(
                "INSERT INTO vuln_findings (id, asset, subject, advisory, aliases, title, details, source, \
                 disclosed, effective, state, first_seen, clock_start, due_at, next_alert_at, alerted) \
                 VALUES ($1, $2, $3, $4, '[]', $5, $6, 'report', $7, $7, $8, $9, $9, $10, $11, 0)",
            )
            .bind(fid)
            .bind(&report.asset)
            .bind(format!("report:{fid}"))
            .bind(&advisory)
            .bind(&report.title)
            .bind(&report.details)
            .bind(rank)
            .bind(live_state(report.severity).as_str())
            .bind(now.as_millis())
            .bind(due_at)
            .bind(next_alert_at)
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

    /// Re-rates a finding, with a justification. Whether the clock restarts from now is the
    /// configured policy choice (`restart_clock_on_rerate`), recorded with the change.
    pub async fn vuln_rate(
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
            details: json!({ "severity": to.as_str(), "reason": reason, "restart_clock": restart }),
        };
        let now = ctx.now;
        self.audited_detailed(ctx, action, async |conn| {
            let f = fetch_finding(conn, id).await?;
            if matches!(f.state, FindingState::Fixed | FindingState::FalsePositive) {
                return Err(StoreError::Conflict(format!(
                    "finding {id} is {}: only a live finding can be re-rated",
                    f.state.as_str()
                )));
            }
            let tier = ensure_asset(conn, &f.asset, now).await?;
            let clock_start = if restart { now } else { f.clock_start };
            let (due_at, next_alert_at) = clocks(tiers.policy(&tier), clock_start, Some(to), 0);
            let state = match f.state {
                FindingState::Triage => FindingState::Open,
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
    pub async fn vuln_accept(
        &self,
        ctx: &AuditContext,
        id: i64,
        until: Timestamp,
        reason: &str,
    ) -> Result<Finding, StoreError> {
        let action = Action {
            name: Change::VulnAccept.into(),
            target: format!("finding:{id}"),
            details: json!({ "until": until.rfc3339_millis(), "reason": reason }),
        };
        let now = ctx.now;
        self.audited(ctx, action, async |conn| {
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
            let f = fetch_finding(conn, id).await?;
            if !matches!(f.state, FindingState::Open | FindingState::Triage | FindingState::Accepted) {
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
    pub async fn vuln_false_positive(
        &self,
        ctx: &AuditContext,
        id: i64,
        reason: &str,
    ) -> Result<Finding, StoreError> {
        let action = Action {
            name: Change::VulnFalsePositive.into(),
            target: format!("finding:{id}"),
            details: json!({ "reason": reason }),
        };
        let now = ctx.now;
        self.audited(ctx, action, async |conn| {
            let f = fetch_finding(conn, id).await?;
            if !matches!(f.state, FindingState::Open | FindingState::Triage | FindingState::Accepted) {
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
    pub async fn vuln_reopen(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
        id: i64,
        reason: &str,
    ) -> Result<Finding, StoreError> {
        let action = Action {
            name: Change::VulnReopen.into(),
            target: format!("finding:{id}"),
            details: json!({ "reason": reason }),
        };
        self.audited(ctx, action, async |conn| {
            let f = fetch_finding(conn, id).await?;
            if matches!(f.state, FindingState::Open | FindingState::Triage) {
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
    pub async fn vuln_set_tier(
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
        self.audited_detailed(ctx, action, async |conn| {
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
    pub async fn vuln_apply_sla(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
    ) -> Result<bool, StoreError> {
        let policy = tiers.describe().to_string();
        let row = sqlx::query("SELECT policy FROM vuln_sla_policy WHERE id = 1")
            .fetch_optional(&self.pool)
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
        self.audited_detailed(ctx, action, async |conn| {
            let mut changed = 0;
            for tier in tiers.names() {
                changed += recompute_clocks(conn, tiers, tier, None).await?;
            }
            sqlx::query("DELETE FROM vuln_sla_policy WHERE id = 1")
                .execute(&mut *conn)
                .await?;
            sqlx::query("INSERT INTO vuln_sla_policy (id, policy, applied_at) VALUES (1, $1, $2)")
                .bind(&policy)
                .bind(now.as_millis())
                .execute(&mut *conn)
                .await?;
            Ok(((), json!({ "findings_recomputed": changed })))
        })
        .await?;
        Ok(true)
    }

    /// One finding with the scanners reporting it and its history.
    pub async fn vuln_finding(&self, id: i64) -> Result<Option<Finding>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut f = match fetch_finding(&mut conn, id).await {
            Ok(f) => f,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let rows = sqlx::query(
            "SELECT scanner FROM vuln_sightings WHERE finding_id = $1 ORDER BY scanner",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            f.scanners.push(row.try_get("scanner")?);
        }
        let rows = sqlx::query(
            "SELECT at, actor, change, detail FROM vuln_history WHERE finding_id = $1 ORDER BY at, change",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let detail: String = row.try_get("detail")?;
            f.history.push(FindingChange {
                at: Timestamp::from_millis(row.try_get("at")?),
                actor: row.try_get("actor")?,
                change: row.try_get("change")?,
                detail: serde_json::from_str(&detail).map_err(corrupt)?,
            });
        }
        Ok(Some(f))
    }

    /// Findings matching `filter`, a page at a time: by number, or, for overdue ones, most
    /// overdue first.
    pub async fn vuln_findings(&self, filter: &FindingFilter) -> Result<FindingPage, StoreError> {
        let mut conds: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        let bind = |v: Bind, binds: &mut Vec<Bind>| {
            binds.push(v);
            format!("${}", binds.len())
        };
        if filter.overdue {
            conds.push("state = 'open'".to_owned());
            let p = bind(Bind::Int(filter.now.as_millis()), &mut binds);
            conds.push(format!("due_at <= {p}"));
        } else {
            let states = if filter.states.is_empty() {
                vec![FindingState::Open, FindingState::Triage]
            } else {
                filter.states.clone()
            };
            // One state as an equality, so the partial indexes on `state = 'open'` apply.
            match states.as_slice() {
                [one] => conds.push(format!("state = '{}'", one.as_str())),
                _ => {
                    let list: Vec<String> =
                        states.iter().map(|s| format!("'{}'", s.as_str())).collect();
                    conds.push(format!("state IN ({})", list.join(", ")));
                }
            }
        }
        if let Some(asset) = &filter.asset {
            let p = bind(Bind::Text(asset.clone()), &mut binds);
            conds.push(format!("asset = {p}"));
        }
        if let Some(s) = filter.severity {
            let p = bind(Bind::Int(s.rank()), &mut binds);
            conds.push(format!("effective <= {p}"));
        }
        let filter_binds = binds.len();
        let count_sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings WHERE {}",
            conds.join(" AND ")
        );
        let cursor = filter.after.as_deref().map(parse_cursor).transpose()?;
        let order = if filter.overdue {
            if let Some((due, id)) = cursor {
                let a = bind(Bind::Int(due), &mut binds);
                let b = bind(Bind::Int(id), &mut binds);
                conds.push(format!("(due_at > {a} OR (due_at = {a} AND id > {b}))"));
            }
            "due_at, id"
        } else {
            if let Some((_, id)) = cursor {
                let b = bind(Bind::Int(id), &mut binds);
                conds.push(format!("id > {b}"));
            }
            "id"
        };
        let limit = i64::from(filter.limit.clamp(1, 1000));
        let sql = format!(
            "SELECT {FINDING_COLUMNS} FROM vuln_findings WHERE {} ORDER BY {order} LIMIT {}",
            conds.join(" AND "),
            limit + 1
        );
        let mut conn = self.pool.acquire().await?;
        let mut q = sqlx::query(&count_sql);
        for b in binds.iter().take(filter_binds) {
            q = b.bind(q);
        }
        let total: i64 = q.fetch_one(&mut *conn).await?.try_get("n")?;
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = b.bind(q);
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut findings = rows
            .iter()
            .map(finding_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if i64::try_from(findings.len()).unwrap_or(i64::MAX) > limit {
            findings.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            findings.last().map(|f| match (filter.overdue, f.due_at) {
                (true, Some(due)) => format!("{}.{}", due.as_millis(), f.id),
                _ => format!("0.{}", f.id),
            })
        } else {
            None
        };
        Ok(FindingPage {
            findings,
            total,
            next,
        })
    }

    /// The assets with their tiers and open and overdue counts.
    pub async fn vuln_assets(&self, now: Timestamp) -> Result<Vec<VulnAsset>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        assets(&mut conn, None, now).await
    }

    /// Remediation figures at `now` for the period from `since`.
    pub async fn vuln_stats(
        &self,
        asset: Option<&str>,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<VulnStats, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let scope = if asset.is_some() {
            " AND asset = $3"
        } else {
            ""
        };
        fn with<'q>(
            sql: &'q str,
            since: Timestamp,
            now: Timestamp,
            asset: Option<&'q str>,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            let q = sqlx::query(sql)
                .bind(since.as_millis())
                .bind(now.as_millis());
            match asset {
                Some(a) => q.bind(a),
                None => q,
            }
        }
        let mut stats = VulnStats {
            open: BTreeMap::new(),
            triage: 0,
            overdue: 0,
            accepted: 0,
            fixed: BTreeMap::new(),
            due_fixed: 0,
            due_fixed_on_time: 0,
            due_missed_open: 0,
        };
        // Each count reads one partial index: open by severity, overdue and missed by due
        // date, triage and accepted by state.
        let only = |n: usize| match asset {
            Some(_) => format!(" AND asset = ${n}"),
            None => String::new(),
        };
        let count = async |conn: &mut AnyConnection, sql: String, times: &[i64]| {
            let mut q = sqlx::query(&sql);
            for t in times {
                q = q.bind(*t);
            }
            if let Some(a) = asset {
                q = q.bind(a);
            }
            q.fetch_all(&mut *conn).await
        };
        let sql = format!(
            "SELECT effective, CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings \
             WHERE state = 'open'{} GROUP BY effective",
            only(1)
        );
        for row in count(&mut conn, sql, &[]).await? {
            if let Some(s) = severity(row.try_get("effective")?)? {
                stats.open.insert(s, row.try_get("n")?);
            }
        }
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings \
             WHERE state = 'open' AND due_at <= $1{}",
            only(2)
        );
        for row in count(&mut conn, sql, &[now.as_millis()]).await? {
            stats.overdue = row.try_get("n")?;
        }
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings \
             WHERE state = 'open' AND due_at >= $1 AND due_at <= $2{}",
            only(3)
        );
        for row in count(&mut conn, sql, &[since.as_millis(), now.as_millis()]).await? {
            stats.due_missed_open = row.try_get("n")?;
        }
        for (state, slot) in [
            ("triage", &mut stats.triage),
            ("accepted", &mut stats.accepted),
        ] {
            let sql = format!(
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM vuln_findings WHERE state = '{state}'{}",
                only(1)
            );
            for row in count(&mut conn, sql, &[]).await? {
                *slot = row.try_get("n")?;
            }
        }
        let sql = format!(
            "SELECT effective, CAST(COUNT(*) AS BIGINT) AS n, \
             CAST(SUM(fixed_at - first_seen) AS BIGINT) AS took, \
             CAST(SUM(CASE WHEN due_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS due, \
             CAST(SUM(CASE WHEN due_at IS NOT NULL AND fixed_at <= due_at THEN 1 ELSE 0 END) AS BIGINT) AS on_time \
             FROM vuln_findings WHERE state = 'fixed' AND fixed_at >= $1 AND fixed_at <= $2{scope} GROUP BY effective"
        );
        for row in with(&sql, since, now, asset).fetch_all(&mut *conn).await? {
            let n: i64 = row.try_get("n")?;
            let took: Option<i64> = row.try_get("took")?;
            stats.due_fixed += row.try_get::<Option<i64>, _>("due")?.unwrap_or(0);
            stats.due_fixed_on_time += row.try_get::<Option<i64>, _>("on_time")?.unwrap_or(0);
            if let Some(s) = severity(row.try_get("effective")?)? {
                let mean = if n > 0 {
                    took.unwrap_or(0) as f64 / n as f64 / 1000.0
                } else {
                    0.0
                };
                stats.fixed.insert(s, (n, mean));
            }
        }
        Ok(stats)
    }

    /// Each finding's open interval and due date, for the burn-down from `since`: every
    /// finding first seen by `now` and not closed before `since` (open and in triage ones
    /// have no close; fixed ones close when fixed, accepted and false positives when decided).
    pub async fn vuln_spans(
        &self,
        asset: Option<&str>,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<warden_vuln::burndown::Span>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // A finding's state is its latest: one accepted and later fixed counts as open until
        // fixed (its history holds the acceptance; the chart reads states, not histories).
        let sql = format!(
            "SELECT first_seen, due_at, closed FROM (SELECT asset, first_seen, due_at, \
             CASE state WHEN 'fixed' THEN fixed_at WHEN 'accepted' THEN decided_at \
             WHEN 'false_positive' THEN decided_at END AS closed \
             FROM vuln_findings WHERE first_seen <= $1) spans \
             WHERE (closed IS NULL OR closed >= $2){}",
            if asset.is_some() {
                " AND asset = $3"
            } else {
                ""
            }
        );
        let mut q = sqlx::query(&sql)
            .bind(now.as_millis())
            .bind(since.as_millis());
        if let Some(a) = asset {
            q = q.bind(a);
        }
        q.fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok(warden_vuln::burndown::Span {
                    opened: row.try_get("first_seen")?,
                    closed: row.try_get("closed")?,
                    due: row.try_get("due_at")?,
                })
            })
            .collect()
    }

    /// Sends the SLA alerts that are due (an audit event each, which webhooks carry:
    /// `vuln.sla.half` at 50 %, `vuln.sla.breach` at 100 %) and reopens findings whose
    /// acceptance expired (`vuln.accept.expire`). At most 100 of each per call.
    pub async fn vuln_timers(
        &self,
        ctx: &AuditContext,
        tiers: &SlaTiers,
    ) -> Result<usize, StoreError> {
        let now = ctx.now.as_millis();
        let due = sqlx::query(
            "SELECT id FROM vuln_findings WHERE state = 'open' AND next_alert_at <= $1 ORDER BY next_alert_at LIMIT 100",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut done = 0;
        for row in due {
            let id: i64 = row.try_get("id")?;
            // The row alone: an alert needs neither the history nor the scanners.
            let f = fetch_finding(&mut *self.pool.acquire().await?, id).await?;
            let Some(due_at) = f.due_at else { continue };
            let level = if due_at.as_millis() <= now { 2 } else { 1 };
            let action = Action {
                name: Name::Change(if level == 2 {
                    Change::VulnSlaBreach
                } else {
                    Change::VulnSlaHalf
                }),
                target: format!("finding:{id}"),
                details: json!({
                    "asset": f.asset,
                    "advisory": f.advisory,
                    "title": f.title,
                    "severity": f.effective.map(Severity::as_str),
                    "due_at": due_at.rfc3339_millis(),
                }),
            };
            let next = if level == 1 {
                Some(due_at.as_millis())
            } else {
                None
            };
            self.audited(ctx, action, async |conn| {
                sqlx::query("UPDATE vuln_findings SET alerted = $1, next_alert_at = $2 WHERE id = $3 AND state = 'open'")
                    .bind(level)
                    .bind(next)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
            .await?;
            done += 1;
        }
        let expired = sqlx::query(
            "SELECT id FROM vuln_findings WHERE state = 'accepted' AND accepted_until <= $1 ORDER BY accepted_until LIMIT 100",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        for row in expired {
            let id: i64 = row.try_get("id")?;
            let action = Action {
                name: Change::VulnAcceptExpire.into(),
                target: format!("finding:{id}"),
                details: Value::Null,
            };
            self.audited(ctx, action, async |conn| {
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
}

/// Puts a finding back to open (or triage) with its clocks re-computed from its first clock.
async fn reopen(
    conn: &mut AnyConnection,
    ctx: &AuditContext,
    tiers: &SlaTiers,
    f: &Finding,
    change: &str,
    detail: &Value,
) -> Result<(), StoreError> {
    let tier = ensure_asset(conn, &f.asset, ctx.now).await?;
    let (due_at, next_alert_at) =
        clocks(tiers.policy(&tier), f.clock_start, f.effective, f.alerted);
    sqlx::query(
        "UPDATE vuln_findings SET state = $1, fixed_at = NULL, accepted_until = NULL, due_at = $2, \
         next_alert_at = $3 WHERE id = $4",
    )
    .bind(live_state(f.effective).as_str())
    .bind(due_at)
    .bind(next_alert_at)
    .bind(f.id)
    .execute(&mut *conn)
    .await?;
    add_history(conn, f.id, ctx, change, detail).await
}

async fn assets(
    conn: &mut AnyConnection,
    only: Option<&str>,
    now: Timestamp,
) -> Result<Vec<VulnAsset>, StoreError> {
    let scope = if only.is_some() {
        "WHERE a.name = $2"
    } else {
        ""
    };
    let sql = format!(
        "SELECT a.name, a.tier, \
         CAST((SELECT COUNT(*) FROM vuln_findings f WHERE f.asset = a.name AND f.state IN ('open', 'triage')) AS BIGINT) AS open, \
         CAST((SELECT COUNT(*) FROM vuln_findings f WHERE f.asset = a.name AND f.state = 'open' AND f.due_at <= $1) AS BIGINT) AS overdue \
         FROM vuln_assets a {scope} ORDER BY a.name"
    );
    let mut q = sqlx::query(&sql).bind(now.as_millis());
    if let Some(a) = only {
        q = q.bind(a.to_owned());
    }
    q.fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            Ok(VulnAsset {
                name: row.try_get("name")?,
                tier: row.try_get("tier")?,
                open: row.try_get("open")?,
                overdue: row.try_get("overdue")?,
            })
        })
        .collect()
}

/// A value bound to a built query.
enum Bind {
    Int(i64),
    Text(String),
}

impl Bind {
    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        match self {
            Bind::Int(v) => q.bind(*v),
            Bind::Text(v) => q.bind(v.as_str()),
        }
    }
}

/// A page cursor: `DUE.ID`.
fn parse_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bad = || {
        StoreError::Conflict(format!(
            "invalid cursor `{}`",
            cursor.chars().take(40).collect::<String>()
        ))
    };
    let (due, id) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        due.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    ))
}
