//! Vulnerability findings with severity SLAs, in Warden's database: imports that open, reopen
//! and fix findings, judgement (re-rating, risk acceptance, false positives), disclosure
//! reports, SLA alerts and the figures that prove remediation times.
//!
//! A store crate: with `warden-store`, the only crates that speak SQL. Its tables are created
//! by `warden-store`'s migrations (one database, one migration set), and every change goes
//! through `warden-store`'s audited write path ([`Store::audited`]), so a change and its audit
//! event commit together here exactly as there. Reach it as `store.vulns()` ([`VulnStore`]).
//!
//! Identity: a finding is its asset, its subject (a package purl without qualifiers, a code
//! fingerprint or location) and any id of its advisory; `vuln_keys` indexes every (asset,
//! subject, id), so a CVE from one scanner and its GHSA from another are one finding. Severity
//! is never part of it. Clocks are timestamps: `due_at` is the clock's start plus the limit of
//! the asset tier's policy for the effective severity; an unrated finding is in triage and has
//! no due date, while its clock runs from when it was found. A finding whose advisory has no
//! fixed version waits (`no_fix`): no clock runs until an import first shows a fix, which
//! starts its clock then, with an audit event of its own (`vuln.fix.available`).
//!
//! # Threat model
//!
//! As `warden-store`'s: it trusts the database and its callers' [`AuditContext`]. An attacker
//! controls scan files (parsed by `warden-vuln` before they arrive here, as typed findings),
//! filters and cursors (bound as parameters; a cursor that is not ours is refused) and free
//! text (bound, never spliced). It promises all-or-nothing imports, one audit event per change
//! in the change's transaction, and acceptances no longer than 366 days.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_model::Timestamp;
use warden_vuln::{DEFAULT_TIER, ImportedFinding, Severity, SlaPolicy};

use warden_store::{AuditContext, Backend, Store, StoreError};

pub mod figures;
mod import;
mod judgement;
mod queries;

pub use self::figures::KeptFigures;
use self::import::{recompute_clocks, record_policy};
use self::queries::assets;

/// The findings in one store.
#[derive(Debug, Clone, Copy)]
pub struct Vulns<'s> {
    store: &'s Store,
    /// How many changes the decider read in the finding's history, if the decisions made
    /// through this view must be refused as stale when it has another number by now.
    seen: Option<i64>,
}

impl Vulns<'_> {
    /// The same findings, for decisions made on a finding as read with `changes` changes in
    /// its history (`None`: as it is): a decision on it once it has another number (another
    /// decision, an import that fixed or reopened it, an expiry) is refused as stale, and
    /// recorded, in the decision's own transaction.
    #[must_use]
    pub fn as_read(self, changes: Option<i64>) -> Self {
        Self {
            seen: changes,
            ..self
        }
    }
}

/// Reaches a store's findings: `store.vulns()`.
pub trait VulnStore {
    /// The findings in this store.
    fn vulns(&self) -> Vulns<'_>;
}

impl VulnStore for Store {
    fn vulns(&self) -> Vulns<'_> {
        Vulns {
            store: self,
            seen: None,
        }
    }
}

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingState {
    /// Rated and waiting for remediation; its clock runs.
    Open,
    /// Unrated: waiting for someone to rate it. Its clock runs; it has no due date yet.
    Triage,
    /// Rated, and its advisory has no fixed version yet: no clock runs until an import shows
    /// a fix ("subject to the public availability of a patch").
    NoFix,
    /// No scanner reports it any more.
    Fixed,
    /// Risk accepted until a date, after which it reopens.
    Accepted,
    /// Not a real finding.
    FalsePositive,
}

impl FindingState {
    /// Every state.
    pub const ALL: [FindingState; 6] = [
        FindingState::Open,
        FindingState::Triage,
        FindingState::NoFix,
        FindingState::Fixed,
        FindingState::Accepted,
        FindingState::FalsePositive,
    ];

    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::Open => "open",
            FindingState::Triage => "triage",
            FindingState::NoFix => "no_fix",
            FindingState::Fixed => "fixed",
            FindingState::Accepted => "accepted",
            FindingState::FalsePositive => "false_positive",
        }
    }

    /// A state by name.
    pub fn from_name(s: &str) -> Option<FindingState> {
        FindingState::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether a finding in this state is still to be remediated: open, in triage, or
    /// waiting for a fix.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            FindingState::Open | FindingState::Triage | FindingState::NoFix
        )
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
    /// Whether it waits for a fix: its advisory had no fixed version when it was found, and
    /// no import has shown one since. No clock runs while it waits.
    pub no_fix: bool,
    /// When an import first showed a fix for a finding found without one: its clock's start.
    pub fix_seen_at: Option<Timestamp>,
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
    /// When its clock started: when it was found, or when a fix was first seen for one found
    /// without a fix, or at a re-rating that restarts clocks.
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
    /// The scanners that report it now (filled by [`Vulns::finding`]).
    pub scanners: Vec<String>,
    /// Its changes, oldest first (filled by [`Vulns::finding`]).
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
    /// Findings that waited for a fix and now show one: their clocks start now.
    pub fix_available: u64,
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
    /// In these states; empty: the live ones (open, triage, no_fix).
    pub states: Vec<FindingState>,
    /// Only open findings past their due date, most overdue first.
    pub overdue: bool,
    /// The time "overdue" is judged at.
    pub now: Timestamp,
    /// Only findings whose advisory, title or package contains this (ignoring case).
    pub text: Option<String>,
    /// The order (overdue lists are always by due date).
    pub sort: FindingSort,
    /// The cursor from the previous page.
    pub after: Option<String>,
    /// At most this many.
    pub limit: u32,
    /// Count at most this many for the total (`None`: count them all). Counting a million
    /// findings takes a second; a bound keeps a page fast, saying only "more than".
    pub count_up_to: Option<u32>,
}

/// The order findings are listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FindingSort {
    /// By number, oldest first.
    #[default]
    Number,
    /// Soonest due first (those without a deadline last).
    Due,
    /// Most severe first (unrated last), then soonest due.
    Severity,
}

impl FindingSort {
    /// An order by its name: `number`, `due` or `severity`.
    pub fn from_name(name: &str) -> Option<FindingSort> {
        match name {
            "number" => Some(FindingSort::Number),
            "due" => Some(FindingSort::Due),
            "severity" => Some(FindingSort::Severity),
            _ => None,
        }
    }
}

/// A page of findings.
#[derive(Debug, Clone)]
pub struct FindingPage {
    /// The findings.
    pub findings: Vec<Finding>,
    /// How many match in all, or the bound when `capped`.
    pub total: i64,
    /// Counting stopped at [`FindingFilter::count_up_to`]: more than `total` match.
    pub capped: bool,
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
    /// Live findings (open, triage, no_fix).
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
    /// Rated findings waiting for a fix to be published (no clock runs).
    pub no_fix: i64,
    /// Open findings past their due date.
    pub overdue: i64,
    /// Findings whose risk is accepted.
    pub accepted: i64,
    /// Findings fixed in the period, per severity, with their mean time to remediate in
    /// seconds: from when they were found, or from when a fix was first seen for those found
    /// without one.
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
     no_fix, fix_seen_at, title, details, source, disclosed, cvss, effective, state, first_seen, clock_start, due_at, \
     alerted, fixed_at, accepted_until, decided_by, decided_at, decision_reason, rated_by, rated_at, \
     rating_reason";

/// Rows per multi-row INSERT: under SQLite's 32,766 bound parameters at 21 columns.
const CHUNK: usize = 1000;

/// How much of a finding's text the search reads, in characters: at most 2,400 bytes, within
/// PostgreSQL's bound on a unique index's entry.
const TEXT_CHARS: usize = 600;

/// What the text search matches in: the advisory, package and title, one per line, ASCII
/// letters lowered, cut at [`TEXT_CHARS`]. The migration that added it computes the same in
/// SQL (`lower` under the "C" collation on PostgreSQL folds ASCII only, as SQLite's does).
fn finding_text(advisory: &str, package: Option<&str>, title: &str) -> String {
    let mut text = format!("{advisory}\n{}\n{title}", package.unwrap_or_default());
    text.make_ascii_lowercase();
    if let Some((end, _)) = text.char_indices().nth(TEXT_CHARS) {
        text.truncate(end);
    }
    text
}

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
        no_fix: row.try_get::<i64, _>("no_fix")? != 0,
        fix_seen_at: ts(row.try_get("fix_seen_at")?),
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
/// date, then none. None while it waits for a fix.
fn clocks(
    policy: &SlaPolicy,
    clock_start: Timestamp,
    effective: Option<Severity>,
    alerted: i64,
    waiting: bool,
) -> (Option<i64>, Option<i64>) {
    let Some(limit) = effective.and_then(|s| policy.limit(s)).filter(|_| !waiting) else {
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

/// The state a finding goes back to when it is live again: triage while unrated, then
/// waiting for a fix or open.
fn live_state(effective: Option<Severity>, waiting: bool) -> FindingState {
    match (effective, waiting) {
        (None, _) => FindingState::Triage,
        (Some(_), true) => FindingState::NoFix,
        (Some(_), false) => FindingState::Open,
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
