//! Vulnerability findings in GraphQL: reading them (`read_vulns`), judging them
//! (`manage_vulns`: re-rating, risk acceptance, false positives, reopening, asset tiers) and
//! feeding them (`import_vulns`: scan imports and disclosure reports). Clocks are timestamps;
//! each finding carries its due date and the seconds left (negative once overdue).

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_model::Timestamp;
use warden_store::Store;
use warden_vuln::Severity;
use warden_vuln_store::{Finding, FindingFilter, FindingState, NewReport, VulnStore};

use super::Capability;
use super::authz::authorize;
use super::{Caller, api_error, bad_input};
use crate::config::VulnConfig;

/// The longest justification accepted.
const MAX_REASON: usize = 500;
/// The longest disclosure report accepted.
const MAX_DETAILS: usize = 20_000;

/// One change of a finding.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnChange {
    /// RFC 3339.
    pub at: String,
    /// Who (`user:alice`, `system`, `token:ci`).
    pub actor: String,
    /// `fixed`, `reopened`, `rated`, `accepted`, `accept_expired`, `false_positive`,
    /// `reported`.
    pub change: String,
    /// What changed, as JSON.
    pub detail: String,
}

/// A vulnerability finding.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnFinding {
    /// Its number.
    pub id: i64,
    /// The asset it is on.
    pub asset: String,
    /// The advisory's id as first reported (`CVE-…`, `GHSA-…`, `RUSTSEC-…`, `CodeQL/py/…`).
    pub advisory: String,
    /// The advisory's other ids.
    pub aliases: Vec<String>,
    /// The affected package, as a purl.
    pub package: Option<String>,
    /// Where in code or in the image.
    pub location: Option<String>,
    /// The version that fixes it.
    pub fixed_in: Option<String>,
    /// Whether it waits for a fix to be published: no SLA clock runs until an import shows
    /// one.
    pub no_fix: bool,
    /// When an import first showed a fix for it, having found it without one, RFC 3339.
    pub fix_seen_at: Option<String>,
    /// One line.
    pub title: String,
    /// A disclosure report's text.
    pub details: Option<String>,
    /// `scan` or `report`.
    pub source: String,
    /// The rating the advisory disclosed; null is unrated.
    pub disclosed_severity: Option<String>,
    /// The CVSS vector of the disclosed rating.
    pub cvss: Option<String>,
    /// The rating its SLA runs on; null while unrated (in triage).
    pub severity: Option<String>,
    /// `open`, `triage`, `no_fix`, `fixed`, `accepted`, `false_positive`.
    pub state: String,
    /// When it was first reported, RFC 3339.
    pub first_seen: String,
    /// When its SLA clock started, RFC 3339.
    pub clock_start: String,
    /// When it is due, RFC 3339; null without a deadline.
    pub due_at: Option<String>,
    /// Seconds until it is due (negative: overdue); null without a deadline or once closed.
    pub seconds_remaining: Option<i64>,
    /// Open and past its due date.
    pub overdue: bool,
    /// When it was fixed, RFC 3339.
    pub fixed_at: Option<String>,
    /// Until when its risk is accepted, RFC 3339.
    pub accepted_until: Option<String>,
    /// Who accepted it or called it a false positive.
    pub decided_by: Option<String>,
    /// When, RFC 3339.
    pub decided_at: Option<String>,
    /// Why.
    pub decision_reason: Option<String>,
    /// Who re-rated it last.
    pub rated_by: Option<String>,
    /// When, RFC 3339.
    pub rated_at: Option<String>,
    /// Why.
    pub rating_reason: Option<String>,
    /// The scanners reporting it now (on `vulnFinding`).
    pub scanners: Vec<String>,
    /// Its changes, oldest first (on `vulnFinding`).
    pub history: Vec<VulnChange>,
}

fn rfc(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::rfc3339_millis)
}

/// A finding as the API shows it at `now`.
pub fn finding_info(f: Finding, now: Timestamp) -> VulnFinding {
    let live = matches!(f.state, FindingState::Open);
    VulnFinding {
        seconds_remaining: f
            .due_at
            .filter(|_| live)
            .map(|d| (d.as_millis() - now.as_millis()).div_euclid(1000)),
        overdue: f.overdue(now),
        id: f.id,
        asset: f.asset,
        advisory: f.advisory,
        aliases: f.aliases,
        package: f.package,
        location: f.location,
        fixed_in: f.fixed_in,
        no_fix: f.no_fix,
        fix_seen_at: rfc(f.fix_seen_at),
        title: f.title,
        details: f.details,
        source: f.source,
        disclosed_severity: f.disclosed.map(|s| s.as_str().to_owned()),
        cvss: f.cvss,
        severity: f.effective.map(|s| s.as_str().to_owned()),
        state: f.state.as_str().to_owned(),
        first_seen: f.first_seen.rfc3339_millis(),
        clock_start: f.clock_start.rfc3339_millis(),
        due_at: rfc(f.due_at),
        fixed_at: rfc(f.fixed_at),
        accepted_until: rfc(f.accepted_until),
        decided_by: f.decided_by,
        decided_at: rfc(f.decided_at),
        decision_reason: f.decision_reason,
        rated_by: f.rated_by,
        rated_at: rfc(f.rated_at),
        rating_reason: f.rating_reason,
        scanners: f.scanners,
        history: f
            .history
            .into_iter()
            .map(|h| VulnChange {
                at: h.at.rfc3339_millis(),
                actor: h.actor,
                change: h.change,
                detail: h.detail.to_string(),
            })
            .collect(),
    }
}

/// A page of findings.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnFindingPage {
    /// The findings.
    pub findings: Vec<VulnFinding>,
    /// How many match in all; with `countUpTo`, at most that many.
    pub total: i64,
    /// Counting stopped at `countUpTo`: more than `total` match.
    pub total_capped: bool,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// An asset and its tier.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnAssetInfo {
    /// Its name.
    pub name: String,
    /// Its SLA tier.
    pub tier: String,
    /// Open findings (open and in triage).
    pub open: i64,
    /// Overdue findings.
    pub overdue: i64,
}

/// Findings open and overdue at one moment of the burn-down.
#[derive(Debug, Clone, SimpleObject)]
pub struct BurndownPoint {
    /// RFC 3339.
    pub at: String,
    /// Findings open then (in triage included).
    pub open: i64,
    /// Of those, past their due date then.
    pub overdue: i64,
}

/// A count per severity.
#[derive(Debug, Clone, SimpleObject)]
pub struct SeverityCount {
    /// The severity.
    pub severity: String,
    /// How many.
    pub count: i64,
}

/// Remediation of one severity over the period.
#[derive(Debug, Clone, SimpleObject)]
pub struct Remediation {
    /// The severity.
    pub severity: String,
    /// Findings fixed.
    pub fixed: i64,
    /// Their mean time to remediate, in seconds (first seen to fixed).
    pub mean_seconds: f64,
}

/// Remediation figures.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnStatsInfo {
    /// The period's start, RFC 3339.
    pub since: String,
    /// Its end (now), RFC 3339.
    pub until: String,
    /// Open findings by severity.
    pub open: Vec<SeverityCount>,
    /// Findings in triage (unrated).
    pub triage: i64,
    /// Rated findings waiting for a fix to be published (no clock runs).
    pub no_fix: i64,
    /// Open findings past their due date.
    pub overdue: i64,
    /// Findings whose risk is accepted.
    pub accepted: i64,
    /// Findings fixed in the period, by severity.
    pub remediated: Vec<Remediation>,
    /// Findings with a deadline fixed in the period.
    pub due_fixed: i64,
    /// Of those, fixed by their due date.
    pub due_fixed_on_time: i64,
    /// Findings whose due date passed in the period and are still open.
    pub due_missed_open: i64,
    /// Fixed on time over (fixed with a deadline + still open past one); null when none
    /// was due.
    pub compliance: Option<f64>,
}

/// The dashboard's figures as kept by the server: remediation over the last 30 days, the
/// burn-down over them a point a day, and every asset's counts, as of `computedAt`. They are
/// recomputed when findings change and at least every `vuln.figures_every`.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnFigures {
    /// The moment they are as of, RFC 3339.
    pub computed_at: String,
    /// No finding has changed since (an SLA passing counts as a change once announced).
    pub up_to_date: bool,
    /// How long computing them took, in milliseconds.
    pub took_ms: i64,
    /// As `vulnStats` then, over the 30 days before.
    pub stats: VulnStatsInfo,
    /// As `vulnBurndown` then (31 points).
    pub burndown: Vec<BurndownPoint>,
    /// Every asset, as `vulnAssets` then.
    pub assets: Vec<VulnAssetInfo>,
}

/// A CI gate's verdict.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnGate {
    /// True when nothing named in `failOn` is open.
    pub pass: bool,
    /// What failed, one line each.
    pub reasons: Vec<String>,
    /// The findings that failed it (at most 100).
    pub findings: Vec<VulnFinding>,
}

/// What an import did.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnImport {
    /// The import's id.
    pub id: String,
    /// The format read.
    pub format: String,
    /// Findings in the file, duplicates merged.
    pub findings: i64,
    /// New findings.
    pub opened: i64,
    /// Fixed findings that came back.
    pub reopened: i64,
    /// Findings no scanner reports any more, now fixed.
    pub fixed: i64,
    /// Findings reported before and still.
    pub unchanged: i64,
}

/// One SLA limit.
#[derive(Debug, Clone, SimpleObject)]
pub struct SlaLimit {
    /// The severity.
    pub severity: String,
    /// The limit in seconds; null: none.
    pub seconds: Option<i64>,
}

/// A tier's SLA policy.
#[derive(Debug, Clone, SimpleObject)]
pub struct SlaTier {
    /// The tier.
    pub tier: String,
    /// Its limits.
    pub limits: Vec<SlaLimit>,
}

/// The SLA policy in force.
#[derive(Debug, Clone, SimpleObject)]
pub struct VulnSlaPolicy {
    /// Whether re-rating restarts a finding's clock.
    pub restart_clock_on_rerate: bool,
    /// The tiers.
    pub tiers: Vec<SlaTier>,
}

fn severity(name: &str) -> async_graphql::Result<Severity> {
    Severity::from_name(name).map_err(bad_input)
}

fn reason(text: &str) -> async_graphql::Result<String> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_REASON || text.chars().any(char::is_control) {
        return Err(bad_input(
            "give a justification: one line of at most 500 bytes",
        ));
    }
    Ok(text.to_owned())
}

/// `seenChanges`, checked: a count of changes is never negative.
fn seen(changes: Option<i64>) -> async_graphql::Result<Option<i64>> {
    match changes {
        Some(n) if n < 0 => Err(bad_input(format!(
            "seenChanges counts the changes in the finding's history, so it is never negative, not {n}"
        ))),
        other => Ok(other),
    }
}

fn asset(name: &str) -> async_graphql::Result<String> {
    crate::vulns::check_asset(name).map_err(bad_input)?;
    Ok(name.to_owned())
}

/// `30d` back from now, or an RFC 3339 time or a date.
fn since(text: &str, now: Timestamp) -> async_graphql::Result<Timestamp> {
    let text = text.trim();
    if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z")) {
        return Ok(Timestamp::from_system(t));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return Ok(Timestamp::from_system(t));
    }
    let span = humantime::parse_duration(text).map_err(|_| {
        bad_input(format!(
            "invalid period start `{text}`: use a span like 30d, a date like 2026-11-01 or an RFC 3339 time"
        ))
    })?;
    Ok(Timestamp::from_millis(
        now.as_millis() - i64::try_from(span.as_millis()).unwrap_or(i64::MAX),
    ))
}

fn store<'a>(ctx: &Context<'a>) -> async_graphql::Result<Arc<Store>> {
    Ok(ctx.data::<Arc<Store>>()?.clone())
}

async fn changed(
    ctx: &Context<'_>,
    caller: &Caller,
    work: impl Future<Output = Result<Finding, warden_store::StoreError>> + Send + 'static,
) -> async_graphql::Result<VulnFinding> {
    let finding = crate::request::detached(work)
        .await
        .map_err(|e| api_error(e, caller))?;
    let full = store(ctx)?
        .vulns()
        .finding(finding.id)
        .await
        .map_err(|e| api_error(e, caller))?
        .unwrap_or(finding);
    Ok(finding_info(full, caller.audit.now))
}

/// The figures as the API gives them.
fn stats_info(
    s: &warden_vuln_store::VulnStats,
    from: Timestamp,
    until: Timestamp,
) -> VulnStatsInfo {
    VulnStatsInfo {
        since: from.rfc3339_millis(),
        until: until.rfc3339_millis(),
        open: Severity::ALL
            .iter()
            .map(|sev| SeverityCount {
                severity: sev.as_str().to_owned(),
                count: s.open.get(sev).copied().unwrap_or(0),
            })
            .collect(),
        triage: s.triage,
        no_fix: s.no_fix,
        overdue: s.overdue,
        accepted: s.accepted,
        remediated: s
            .fixed
            .iter()
            .map(|(sev, (n, mean))| Remediation {
                severity: sev.as_str().to_owned(),
                fixed: *n,
                mean_seconds: *mean,
            })
            .collect(),
        due_fixed: s.due_fixed,
        due_fixed_on_time: s.due_fixed_on_time,
        due_missed_open: s.due_missed_open,
        compliance: s.compliance(),
    }
}

fn burndown_point(p: warden_vuln::burndown::Point) -> BurndownPoint {
    BurndownPoint {
        at: Timestamp::from_millis(p.at).rfc3339_millis(),
        open: p.open,
        overdue: p.overdue,
    }
}

fn asset_info(a: warden_vuln_store::VulnAsset) -> VulnAssetInfo {
    VulnAssetInfo {
        name: a.name,
        tier: a.tier,
        open: a.open,
        overdue: a.overdue,
    }
}

/// Reading findings.
#[derive(Debug, Default)]
pub struct VulnQuery;

#[Object]
impl VulnQuery {
    /// Findings, by number (or `sort`: `due`, soonest first; `severity`, most severe first);
    /// with `overdue`, the open ones past their due date, most overdue first. Without
    /// `states`, open and in triage. `severity` is a floor (`high`: critical and high);
    /// `text` matches advisory ids, titles and packages, ignoring case. With `countUpTo`,
    /// `total` counts at most that many (`totalCapped` says more match): a fast page over a
    /// million findings.
    #[expect(
        clippy::too_many_arguments,
        reason = "a GraphQL field with its filter arguments"
    )]
    async fn vuln_findings(
        &self,
        ctx: &Context<'_>,
        asset: Option<String>,
        severity: Option<String>,
        #[graphql(default)] states: Vec<String>,
        #[graphql(default)] overdue: bool,
        text: Option<String>,
        sort: Option<String>,
        #[graphql(default = 100)] first: u32,
        after: Option<String>,
        count_up_to: Option<u32>,
    ) -> async_graphql::Result<VulnFindingPage> {
        let caller = authorize(ctx, Capability::ReadVulns, "vulns").await?;
        let sort = match sort.as_deref() {
            None => warden_vuln_store::FindingSort::Number,
            Some(s) => warden_vuln_store::FindingSort::from_name(s).ok_or_else(|| {
                bad_input(format!("unknown order `{s}`: use number, due or severity"))
            })?,
        };
        let text = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if let Some(t) = &text
            && (t.len() > 200 || t.chars().any(char::is_control))
        {
            return Err(bad_input("search text is one line of at most 200 bytes"));
        }
        let mut parsed = Vec::with_capacity(states.len());
        for s in &states {
            parsed.push(FindingState::from_name(s).ok_or_else(|| {
                bad_input(format!(
                    "unknown state `{s}`: use open, triage, no_fix, fixed, accepted or false_positive"
                ))
            })?);
        }
        let filter = FindingFilter {
            asset: asset.as_deref().map(self::asset).transpose()?,
            severity: severity.as_deref().map(self::severity).transpose()?,
            states: parsed,
            overdue,
            now: caller.audit.now,
            text,
            sort,
            after,
            limit: first.clamp(1, 1000),
            count_up_to,
        };
        let page = store(ctx)?
            .vulns()
            .findings(&filter)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(VulnFindingPage {
            findings: page
                .findings
                .into_iter()
                .map(|f| finding_info(f, caller.audit.now))
                .collect(),
            total: page.total,
            total_capped: page.capped,
            next: page.next,
        })
    }

    /// One finding with its scanners and history.
    async fn vuln_finding(
        &self,
        ctx: &Context<'_>,
        id: i64,
    ) -> async_graphql::Result<Option<VulnFinding>> {
        let caller = authorize(ctx, Capability::ReadVulns, &format!("finding:{id}")).await?;
        let f = store(ctx)?
            .vulns()
            .finding(id)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(f.map(|f| finding_info(f, caller.audit.now)))
    }

    /// Assets with their tiers and counts.
    async fn vuln_assets(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<VulnAssetInfo>> {
        let caller = authorize(ctx, Capability::ReadVulns, "vulns").await?;
        let assets = store(ctx)?
            .vulns()
            .assets(caller.audit.now)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(assets.into_iter().map(asset_info).collect())
    }

    /// The dashboard's figures as kept by the server, for all assets or one: what
    /// `vulnStats`, `vulnBurndown` and `vulnAssets` gave when they were computed, read
    /// without counting the findings again. Null until first computed (within seconds of the
    /// server starting) and for an asset that has none yet.
    async fn vuln_figures(
        &self,
        ctx: &Context<'_>,
        asset: Option<String>,
    ) -> async_graphql::Result<Option<VulnFigures>> {
        let caller = authorize(ctx, Capability::ReadVulns, "vulns").await?;
        let asset = asset.as_deref().map(self::asset).transpose()?;
        let store = store(ctx)?;
        let vulns = store.vulns();
        let marker = vulns.changed_at().await.map_err(|e| api_error(e, caller))?;
        let state = vulns
            .kept_figures_state()
            .await
            .map_err(|e| api_error(e, caller))?;
        // Out of date and cheap to compute (a small installation): computed now.
        if warden_vuln_store::figures::refresh_inline(state, marker) {
            vulns
                .refresh_figures(caller.audit.now, marker)
                .await
                .map_err(|e| api_error(e, caller))?;
        }
        let kept = vulns
            .kept_figures(asset.as_deref())
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(kept.map(|k| VulnFigures {
            up_to_date: k.marker == marker,
            computed_at: k.computed_at.rfc3339_millis(),
            took_ms: i64::try_from(k.took.as_millis()).unwrap_or(i64::MAX),
            stats: stats_info(&k.stats, k.since, k.computed_at),
            burndown: k.burndown.into_iter().map(burndown_point).collect(),
            assets: k.assets.into_iter().map(asset_info).collect(),
        }))
    }

    /// Remediation figures over the period from `since` (a span back from now, a date or a
    /// time): open by severity, overdue, mean time to remediate, SLA compliance.
    async fn vuln_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "\"30d\".to_owned()")] since: String,
        asset: Option<String>,
    ) -> async_graphql::Result<VulnStatsInfo> {
        let caller = authorize(ctx, Capability::ReadVulns, "vulns").await?;
        let now = caller.audit.now;
        let from = self::since(&since, now)?;
        let asset = asset.as_deref().map(self::asset).transpose()?;
        let s = store(ctx)?
            .vulns()
            .stats(asset.as_deref(), from, now)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(stats_info(&s, from, now))
    }

    /// The SLA burn-down over the period from `since` (as in `vulnStats`): findings open, and
    /// of those overdue, at `points` evenly spaced moments (2 to 366) ending now.
    async fn vuln_burndown(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "\"30d\".to_owned()")] since: String,
        asset: Option<String>,
        #[graphql(default = 31)] points: i32,
    ) -> async_graphql::Result<Vec<BurndownPoint>> {
        let caller = authorize(ctx, Capability::ReadVulns, "vulns").await?;
        let now = caller.audit.now;
        let from = self::since(&since, now)?;
        let asset = asset.as_deref().map(self::asset).transpose()?;
        let points = usize::try_from(points)
            .ok()
            .filter(|p| (2..=366).contains(p))
            .ok_or_else(|| bad_input("points must be between 2 and 366"))?;
        let spans = store(ctx)?
            .vulns()
            .spans(asset.as_deref(), from, now)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(
            warden_vuln::burndown::burndown(&spans, from.as_millis(), now.as_millis(), points)
                .into_iter()
                .map(burndown_point)
                .collect(),
        )
    }

    /// A CI gate over an asset's live findings: `failOn` holds `overdue`, `unrated` and
    /// severities (a floor: `high` fails on critical and high). Accepted risks and false
    /// positives never fail it.
    async fn vuln_gate(
        &self,
        ctx: &Context<'_>,
        asset: String,
        fail_on: Vec<String>,
    ) -> async_graphql::Result<VulnGate> {
        let caller = authorize(ctx, Capability::ReadVulns, "vulns").await?;
        let asset = self::asset(&asset)?;
        if fail_on.is_empty() {
            return Err(bad_input(
                "name what fails the gate: overdue, unrated or a severity",
            ));
        }
        let (mut overdue, mut unrated, mut floor) = (false, false, None::<Severity>);
        for f in &fail_on {
            match f.trim() {
                "overdue" => overdue = true,
                "unrated" => unrated = true,
                other => {
                    let s = Severity::from_name(other).map_err(|_| {
                        bad_input(format!(
                            "unknown gate condition `{other}`: use overdue, unrated, critical, high, medium, low or informational"
                        ))
                    })?;
                    floor = Some(floor.map_or(s, |f: Severity| f.max(s)));
                }
            }
        }
        let now = caller.audit.now;
        let store = store(ctx)?;
        let mut reasons = Vec::new();
        let mut failing: Vec<Finding> = Vec::new();
        let mut check = async |what: String, filter: FindingFilter| -> async_graphql::Result<()> {
            let page = store
                .vulns()
                .findings(&filter)
                .await
                .map_err(|e| api_error(e, caller))?;
            if page.total > 0 {
                reasons.push(format!("{} {what}", page.total));
                for f in page.findings {
                    if failing.len() < 100 && !failing.iter().any(|x| x.id == f.id) {
                        failing.push(f);
                    }
                }
            }
            Ok(())
        };
        let base = FindingFilter {
            asset: Some(asset.clone()),
            severity: None,
            states: vec![FindingState::Open],
            overdue: false,
            now,
            text: None,
            sort: warden_vuln_store::FindingSort::Number,
            after: None,
            limit: 100,
            count_up_to: None,
        };
        if overdue {
            check(
                "overdue".to_owned(),
                FindingFilter {
                    overdue: true,
                    ..base.clone()
                },
            )
            .await?;
        }
        if let Some(s) = floor {
            check(
                format!("open at {s} or above"),
                FindingFilter {
                    severity: Some(s),
                    ..base.clone()
                },
            )
            .await?;
        }
        if unrated {
            check(
                "unrated, in triage".to_owned(),
                FindingFilter {
                    states: vec![FindingState::Triage],
                    ..base.clone()
                },
            )
            .await?;
        }
        Ok(VulnGate {
            pass: reasons.is_empty(),
            reasons,
            findings: failing.into_iter().map(|f| finding_info(f, now)).collect(),
        })
    }

    /// The SLA policy in force.
    async fn vuln_sla_policy(&self, ctx: &Context<'_>) -> async_graphql::Result<VulnSlaPolicy> {
        authorize(ctx, Capability::ReadVulns, "vulns").await?;
        let config = ctx.data::<VulnConfig>()?;
        Ok(VulnSlaPolicy {
            restart_clock_on_rerate: config.sla.restart_clock_on_rerate,
            tiers: config
                .sla
                .names()
                .map(|tier| SlaTier {
                    tier: tier.to_owned(),
                    limits: Severity::ALL
                        .iter()
                        .map(|s| SlaLimit {
                            severity: s.as_str().to_owned(),
                            seconds: config
                                .sla
                                .policy(tier)
                                .limit(*s)
                                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

/// Judging and feeding findings.
#[derive(Debug, Default)]
pub struct VulnMutation;

#[Object]
impl VulnMutation {
    /// Imports a scanner's output given as text (for large files, `POST /v1/vuln/import`
    /// takes the file as the body). All or nothing.
    async fn import_scan(
        &self,
        ctx: &Context<'_>,
        asset: String,
        content: String,
        scanner: Option<String>,
        #[graphql(default_with = "\"auto\".to_owned()")] format: String,
        file: Option<String>,
    ) -> async_graphql::Result<VulnImport> {
        let caller = authorize(ctx, Capability::ImportVulns, "vulns").await?;
        let config = ctx.data::<VulnConfig>()?;
        let params = crate::vulns::ImportParams {
            asset,
            scanner,
            format: Some(format),
            file,
        };
        let (format, s) = crate::vulns::import(
            &store(ctx)?,
            &config.sla,
            config.max_import_bytes,
            &caller.audit,
            params,
            content.into(),
        )
        .await
        .map_err(|e| match e {
            crate::vulns::ImportError::Bad(why) => bad_input(why),
            crate::vulns::ImportError::Store(e) => api_error(e, caller),
        })?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(VulnImport {
            id: s.id,
            format: format.as_str().to_owned(),
            findings: n(s.findings),
            opened: n(s.opened),
            reopened: n(s.reopened),
            fixed: n(s.fixed),
            unchanged: n(s.unchanged),
        })
    }

    /// Re-rates a finding with a justification; the configured policy decides whether its
    /// clock restarts.
    /// `seenChanges`: how many changes the finding's history had when the decider read it; if
    /// it has another number by now the decision is refused as `STALE`, and recorded.
    async fn rate_finding(
        &self,
        ctx: &Context<'_>,
        id: i64,
        severity: String,
        reason: String,
        seen_changes: Option<i64>,
    ) -> async_graphql::Result<VulnFinding> {
        let caller = authorize(ctx, Capability::ManageVulns, &format!("finding:{id}")).await?;
        let (to, reason) = (self::severity(&severity)?, self::reason(&reason)?);
        let sla = ctx.data::<VulnConfig>()?.sla.clone();
        let (store, audit) = (store(ctx)?, caller.audit.clone());
        let seen = self::seen(seen_changes)?;
        changed(ctx, caller, async move {
            store
                .vulns()
                .as_read(seen)
                .rate(&audit, &sla, id, to, &reason)
                .await
        })
        .await
    }

    /// Accepts a finding's risk until `until` (a date, an RFC 3339 time or a span like 30d;
    /// at most 366 days), with a justification. The caller is the approver; it reopens by
    /// itself then.
    /// `seenChanges`: how many changes the finding's history had when the decider read it; if
    /// it has another number by now the decision is refused as `STALE`, and recorded.
    async fn accept_finding_risk(
        &self,
        ctx: &Context<'_>,
        id: i64,
        until: String,
        reason: String,
        seen_changes: Option<i64>,
    ) -> async_graphql::Result<VulnFinding> {
        let caller = authorize(ctx, Capability::ManageVulns, &format!("finding:{id}")).await?;
        let until = super::reviews::due(&until, caller.audit.now)?;
        let reason = self::reason(&reason)?;
        let (store, audit) = (store(ctx)?, caller.audit.clone());
        let seen = self::seen(seen_changes)?;
        changed(ctx, caller, async move {
            store
                .vulns()
                .as_read(seen)
                .accept(&audit, id, until, &reason)
                .await
        })
        .await
    }

    /// Calls a finding a false positive, with a justification.
    /// `seenChanges`: how many changes the finding's history had when the decider read it; if
    /// it has another number by now the decision is refused as `STALE`, and recorded.
    async fn mark_finding_false_positive(
        &self,
        ctx: &Context<'_>,
        id: i64,
        reason: String,
        seen_changes: Option<i64>,
    ) -> async_graphql::Result<VulnFinding> {
        let caller = authorize(ctx, Capability::ManageVulns, &format!("finding:{id}")).await?;
        let reason = self::reason(&reason)?;
        let (store, audit) = (store(ctx)?, caller.audit.clone());
        let seen = self::seen(seen_changes)?;
        changed(ctx, caller, async move {
            store
                .vulns()
                .as_read(seen)
                .false_positive(&audit, id, &reason)
                .await
        })
        .await
    }

    /// Reopens an accepted, false-positive or fixed finding, with a justification.
    /// `seenChanges`: how many changes the finding's history had when the decider read it; if
    /// it has another number by now the decision is refused as `STALE`, and recorded.
    async fn reopen_finding(
        &self,
        ctx: &Context<'_>,
        id: i64,
        reason: String,
        seen_changes: Option<i64>,
    ) -> async_graphql::Result<VulnFinding> {
        let caller = authorize(ctx, Capability::ManageVulns, &format!("finding:{id}")).await?;
        let reason = self::reason(&reason)?;
        let sla = ctx.data::<VulnConfig>()?.sla.clone();
        let (store, audit) = (store(ctx)?, caller.audit.clone());
        let seen = self::seen(seen_changes)?;
        changed(ctx, caller, async move {
            store
                .vulns()
                .as_read(seen)
                .reopen(&audit, &sla, id, &reason)
                .await
        })
        .await
    }

    /// Puts an asset in a configured SLA tier; its live findings' due dates follow.
    async fn set_asset_tier(
        &self,
        ctx: &Context<'_>,
        asset: String,
        tier: String,
    ) -> async_graphql::Result<VulnAssetInfo> {
        let caller = authorize(ctx, Capability::ManageVulns, &format!("asset:{asset}")).await?;
        let asset = self::asset(&asset)?;
        let sla = ctx.data::<VulnConfig>()?.sla.clone();
        let (store, audit) = (store(ctx)?, caller.audit.clone());
        let a = crate::request::detached(async move {
            store.vulns().set_tier(&audit, &sla, &asset, &tier).await
        })
        .await
        .map_err(|e| api_error(e, caller))?;
        Ok(VulnAssetInfo {
            name: a.name,
            tier: a.tier,
            open: a.open,
            overdue: a.overdue,
        })
    }

    /// Files a vulnerability report (from a researcher, a bug bounty, an internal finder) as
    /// a finding on the asset: in triage, or open at the reporter's severity.
    async fn report_vulnerability(
        &self,
        ctx: &Context<'_>,
        asset: String,
        title: String,
        details: String,
        severity: Option<String>,
    ) -> async_graphql::Result<VulnFinding> {
        let caller = authorize(ctx, Capability::ImportVulns, &format!("asset:{asset}")).await?;
        let asset = self::asset(&asset)?;
        let title = title.trim().to_owned();
        if title.is_empty()
            || title.chars().count() > warden_vuln::MAX_TITLE
            || title.chars().any(char::is_control)
        {
            return Err(bad_input(
                "give a title: one line of at most 200 characters",
            ));
        }
        if details.trim().is_empty() || details.len() > MAX_DETAILS {
            return Err(bad_input("give the report's details: at most 20,000 bytes"));
        }
        let severity = severity.as_deref().map(self::severity).transpose()?;
        let sla = ctx.data::<VulnConfig>()?.sla.clone();
        let (store, audit) = (store(ctx)?, caller.audit.clone());
        let report = NewReport {
            asset,
            title,
            details,
            severity,
        };
        changed(ctx, caller, async move {
            store.vulns().report(&audit, &sla, report).await
        })
        .await
    }
}
