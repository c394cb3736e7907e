//! The dashboard's figures, kept. Counting a million findings for every page view costs
//! seconds, so one pass over the findings computes, for all assets and for each asset, what
//! [`Vulns::stats`], [`Vulns::assets`] and the burn-down of [`Vulns::spans`] would give for
//! the default period (the last 30 days), and keeps it in `vuln_figures` with the time it is
//! as of. The server's timer recomputes it when the audit log shows a change to findings
//! (an import, a judgement, an SLA breach, a changed policy or tier) and at least every
//! `vuln.figures_every`; readers are told its time.
//!
//! The pass and the live queries must agree: the store tests compare them on random findings
//! on both backends.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use warden_model::{Change, Timestamp};
use warden_vuln::Severity;
use warden_vuln::burndown::{Point, Span, burndown};

use super::{FindingState, VulnAsset, VulnStats, Vulns, corrupt, severity};
use warden_store::{Backend, StoreError};

/// The period the kept figures cover: the dashboard's default.
pub const PERIOD: Duration = Duration::from_secs(30 * 86_400);

/// Points on the kept burn-down: one a day over the period, both ends included.
pub const POINTS: usize = 31;

/// The changes after which the figures are out of date. Each is one audit action, read by
/// its index for its latest sequence number.
const CHANGES: [Change; 10] = [
    Change::VulnImport,
    Change::VulnRate,
    Change::VulnAccept,
    Change::VulnAcceptExpire,
    Change::VulnFalsePositive,
    Change::VulnReopen,
    Change::VulnFixAvailable,
    Change::VulnSlaBreach,
    Change::VulnSlaPolicy,
    Change::VulnAssetTier,
];

/// Figures that took less than this to compute are recomputed by a reader who finds them
/// out of date, so a small installation's dashboard is never behind; larger ones wait for
/// the timer and say how old they are.
pub const INLINE: Duration = Duration::from_millis(100);

/// Whether figures kept as `kept` (as of, change marker, time taken) should be recomputed at
/// `now`, when the latest change to findings is `marker`: there are none yet; findings changed
/// since and the last pass began at least ten of its own durations (and a second) ago, so
/// passes take at most a tenth of the time; or they are older than `every`.
pub fn due(
    kept: Option<(Timestamp, i64, Duration)>,
    marker: i64,
    now: Timestamp,
    every: Duration,
) -> bool {
    let Some((at, kept_marker, took)) = kept else {
        return true;
    };
    let age = u64::try_from(now.as_millis() - at.as_millis()).unwrap_or(0);
    let age = Duration::from_millis(age);
    (kept_marker != marker && age >= (took * 10).max(Duration::from_secs(1))) || age >= every
}

/// Whether a reader should recompute figures kept as `kept` at once, the latest change to
/// findings being `marker`: there are none yet, or they are out of date and the last pass
/// took under [`INLINE`].
pub fn refresh_inline(kept: Option<(Timestamp, i64, Duration)>, marker: i64) -> bool {
    kept.is_none_or(|(_, kept, took)| kept != marker && took < INLINE)
}

/// Figures for all assets or one, as of a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptFigures {
    /// The moment they are as of: nothing after it is in them.
    pub computed_at: Timestamp,
    /// The start of the period the remediation figures and the burn-down cover.
    pub since: Timestamp,
    /// The audit sequence number of the latest change to findings they include (0: none).
    pub marker: i64,
    /// How long the pass took.
    pub took: Duration,
    /// The remediation figures (as [`Vulns::stats`] over the period).
    pub stats: VulnStats,
    /// The burn-down over the period, [`POINTS`] points.
    pub burndown: Vec<Point>,
    /// Every asset with its counts (as [`Vulns::assets`]), also when the figures are one
    /// asset's.
    pub assets: Vec<VulnAsset>,
}

/// One finding as the pass reads it.
#[derive(Debug, Clone)]
struct FigureRow {
    /// Its asset.
    asset: String,
    /// Its state.
    state: FindingState,
    /// Its effective severity.
    effective: Option<Severity>,
    /// When first seen.
    first_seen: i64,
    /// When a fix was first seen, for those found without one.
    fix_seen_at: Option<i64>,
    /// When its SLA runs out.
    due_at: Option<i64>,
    /// When it was fixed.
    fixed_at: Option<i64>,
    /// When it was accepted or called a false positive.
    decided_at: Option<i64>,
}

/// One scope's running totals.
#[derive(Debug, Default)]
struct Tally {
    open: BTreeMap<Severity, i64>,
    triage: i64,
    no_fix: i64,
    overdue: i64,
    accepted: i64,
    /// Per severity: how many fixed in the period, and their summed time to remediate (ms).
    fixed: BTreeMap<Severity, (i64, i64)>,
    due_fixed: i64,
    due_fixed_on_time: i64,
    due_missed_open: i64,
    /// Open, in triage or waiting for a fix.
    live: i64,
    spans: Vec<Span>,
}

impl Tally {
    /// Adds one finding, exactly as the live queries count it.
    fn add(&mut self, r: &FigureRow, since: i64, now: i64) {
        let due_by = |t: i64| r.due_at.is_some_and(|d| d <= t);
        if matches!(
            r.state,
            FindingState::Open | FindingState::Triage | FindingState::NoFix
        ) {
            self.live += 1;
        }
        match r.state {
            FindingState::Open => {
                if let Some(s) = r.effective {
                    *self.open.entry(s).or_default() += 1;
                }
                if due_by(now) {
                    self.overdue += 1;
                    if r.due_at.is_some_and(|d| d >= since) {
                        self.due_missed_open += 1;
                    }
                }
            }
            FindingState::Triage => self.triage += 1,
            FindingState::NoFix => self.no_fix += 1,
            FindingState::Accepted => self.accepted += 1,
            FindingState::Fixed => {
                if let Some(at) = r.fixed_at.filter(|t| (since..=now).contains(t)) {
                    if let Some(s) = r.effective {
                        let slot = self.fixed.entry(s).or_default();
                        slot.0 += 1;
                        slot.1 += at - r.fix_seen_at.unwrap_or(r.first_seen);
                    }
                    if r.due_at.is_some() {
                        self.due_fixed += 1;
                        if r.due_at.is_some_and(|d| at <= d) {
                            self.due_fixed_on_time += 1;
                        }
                    }
                }
            }
            FindingState::FalsePositive => {}
        }
        // A finding's state is its latest: the chart reads states, not histories.
        let closed = match r.state {
            FindingState::Fixed => r.fixed_at,
            FindingState::Accepted | FindingState::FalsePositive => r.decided_at,
            _ => None,
        };
        if r.first_seen <= now && closed.is_none_or(|c| c >= since) {
            self.spans.push(Span {
                opened: r.first_seen,
                closed,
                due: r.due_at,
            });
        }
    }
}

fn mean_seconds(n: i64, took_ms: i64) -> f64 {
    if n > 0 {
        took_ms as f64 / n as f64 / 1000.0
    } else {
        0.0
    }
}

impl Tally {
    /// Adds one asset's counts into the counts for all assets (its spans are not needed:
    /// burn-downs over the same moments add up).
    fn merge(&mut self, one: &Tally) {
        for (s, n) in &one.open {
            *self.open.entry(*s).or_default() += n;
        }
        self.triage += one.triage;
        self.no_fix += one.no_fix;
        self.overdue += one.overdue;
        self.accepted += one.accepted;
        for (s, (n, took)) in &one.fixed {
            let slot = self.fixed.entry(*s).or_default();
            slot.0 += n;
            slot.1 += took;
        }
        self.due_fixed += one.due_fixed;
        self.due_fixed_on_time += one.due_fixed_on_time;
        self.due_missed_open += one.due_missed_open;
        self.live += one.live;
    }
}

/// What is kept for all assets (first, scope `""`) and for each asset, from each asset's
/// tallies (every asset with a tier has one) and tiers.
fn finish(
    tallies: &BTreeMap<String, Tally>,
    tiers: &BTreeMap<String, String>,
    since: Timestamp,
    now: Timestamp,
) -> Vec<(String, Stored)> {
    let (from, until) = (since.as_millis(), now.as_millis());
    let mut all = Tally::default();
    let mut all_points = burndown(&[], from, until, POINTS);
    let mut assets = Vec::with_capacity(tallies.len());
    let mut out = Vec::with_capacity(tallies.len() + 1);
    for (name, tally) in tallies {
        all.merge(tally);
        let points = burndown(&tally.spans, from, until, POINTS);
        for (sum, p) in all_points.iter_mut().zip(&points) {
            sum.open += p.open;
            sum.overdue += p.overdue;
        }
        assets.push(VulnAsset {
            name: name.clone(),
            tier: tiers
                .get(name)
                .cloned()
                .unwrap_or_else(|| warden_vuln::DEFAULT_TIER.to_owned()),
            open: tally.live,
            overdue: tally.overdue,
        });
        out.push((name.clone(), Stored::new(tally, &points, &[])));
    }
    out.insert(0, (ALL.to_owned(), Stored::new(&all, &all_points, &assets)));
    out
}

/// What is kept in `figures`: the stats and the burn-down, and for the scope of all assets,
/// the assets.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// Severity name → open findings.
    open: BTreeMap<String, i64>,
    triage: i64,
    no_fix: i64,
    overdue: i64,
    accepted: i64,
    /// Severity name → (fixed in the period, their summed time to remediate in ms): sums,
    /// so the mean is computed as the live query computes it.
    fixed: BTreeMap<String, (i64, i64)>,
    due_fixed: i64,
    due_fixed_on_time: i64,
    due_missed_open: i64,
    /// (moment, open, overdue).
    burndown: Vec<(i64, i64, i64)>,
    /// (name, tier, live, overdue).
    #[serde(default)]
    assets: Vec<(String, String, i64, i64)>,
}

impl Stored {
    fn new(tally: &Tally, points: &[Point], assets: &[VulnAsset]) -> Stored {
        Stored {
            open: tally
                .open
                .iter()
                .map(|(s, n)| (s.as_str().to_owned(), *n))
                .collect(),
            triage: tally.triage,
            no_fix: tally.no_fix,
            overdue: tally.overdue,
            accepted: tally.accepted,
            fixed: tally
                .fixed
                .iter()
                .map(|(s, v)| (s.as_str().to_owned(), *v))
                .collect(),
            due_fixed: tally.due_fixed,
            due_fixed_on_time: tally.due_fixed_on_time,
            due_missed_open: tally.due_missed_open,
            burndown: points.iter().map(|p| (p.at, p.open, p.overdue)).collect(),
            assets: assets
                .iter()
                .map(|a| (a.name.clone(), a.tier.clone(), a.open, a.overdue))
                .collect(),
        }
    }

    fn stats(&self) -> Result<VulnStats, StoreError> {
        let named = |name: &str| {
            Severity::from_name(name).map_err(|_| corrupt(format!("kept severity `{name}`")))
        };
        Ok(VulnStats {
            open: self
                .open
                .iter()
                .map(|(s, n)| Ok((named(s)?, *n)))
                .collect::<Result<_, StoreError>>()?,
            triage: self.triage,
            no_fix: self.no_fix,
            overdue: self.overdue,
            accepted: self.accepted,
            fixed: self
                .fixed
                .iter()
                .map(|(s, (n, took))| Ok((named(s)?, (*n, mean_seconds(*n, *took)))))
                .collect::<Result<_, StoreError>>()?,
            due_fixed: self.due_fixed,
            due_fixed_on_time: self.due_fixed_on_time,
            due_missed_open: self.due_missed_open,
        })
    }
}

/// The scope of all assets.
const ALL: &str = "";

impl Vulns<'_> {
    /// The audit sequence number of the latest change to findings (0: none yet): one index
    /// read per kind of change.
    pub async fn changed_at(&self) -> Result<i64, StoreError> {
        let each: Vec<String> = CHANGES
            .iter()
            .map(|c| {
                format!(
                    "SELECT MAX(seq) AS m FROM audit_log WHERE action = '{}'",
                    c.as_str()
                )
            })
            .collect();
        let sql = format!(
            "SELECT CAST(COALESCE(MAX(m), 0) AS BIGINT) AS n FROM ({}) latest",
            each.join(" UNION ALL ")
        );
        Ok(sqlx::query(&sql)
            .fetch_one(self.store.pool())
            .await?
            .try_get("n")?)
    }

    /// Each asset's tallies over every finding that can count in the period from `since`
    /// (all but those fixed or called false positives before it), read as a stream: a
    /// million findings are never all in memory, and the pass yields to other tasks as it
    /// goes.
    async fn tallies(
        &self,
        tiers: &BTreeMap<String, String>,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<BTreeMap<String, Tally>, StoreError> {
        let (from, until) = (since.as_millis(), now.as_millis());
        let mut tallies: BTreeMap<String, Tally> = tiers
            .keys()
            .map(|name| (name.clone(), Tally::default()))
            .collect();
        let mut conn = self.store.pool().acquire().await?;
        let mut rows = sqlx::query(
            "SELECT asset, state, effective, first_seen, fix_seen_at, due_at, fixed_at, decided_at \
             FROM vuln_findings WHERE state NOT IN ('fixed', 'false_positive') \
             OR (state = 'fixed' AND (fixed_at IS NULL OR fixed_at >= $1)) \
             OR (state = 'false_positive' AND (decided_at IS NULL OR decided_at >= $1))",
        )
        .bind(from)
        .fetch(&mut *conn);
        let mut read = 0_u32;
        while let Some(row) = rows.try_next().await? {
            let state: String = row.try_get("state")?;
            let finding = FigureRow {
                asset: row.try_get("asset")?,
                state: FindingState::from_name(&state)
                    .ok_or_else(|| corrupt(format!("finding state `{state}`")))?,
                effective: severity(row.try_get("effective")?)?,
                first_seen: row.try_get("first_seen")?,
                fix_seen_at: row.try_get("fix_seen_at")?,
                due_at: row.try_get("due_at")?,
                fixed_at: row.try_get("fixed_at")?,
                decided_at: row.try_get("decided_at")?,
            };
            match tallies.get_mut(&finding.asset) {
                Some(tally) => tally.add(&finding, from, until),
                None => {
                    let mut tally = Tally::default();
                    tally.add(&finding, from, until);
                    tallies.insert(finding.asset, tally);
                }
            }
            read = read.wrapping_add(1);
            if read.is_multiple_of(10_000) {
                tokio::task::yield_now().await;
            }
        }
        Ok(tallies)
    }

    /// Computes the figures as of `now` and keeps them, unless figures as of a later moment
    /// were kept meanwhile (by another replica). `marker` is [`Vulns::changed_at`] read before
    /// the findings were. Returns how long the pass took.
    pub async fn refresh_figures(
        &self,
        now: Timestamp,
        marker: i64,
    ) -> Result<Duration, StoreError> {
        let started = std::time::Instant::now();
        let since = Timestamp::from_millis(
            now.as_millis() - i64::try_from(PERIOD.as_millis()).unwrap_or(0),
        );
        let tiers: BTreeMap<String, String> = sqlx::query("SELECT name, tier FROM vuln_assets")
            .fetch_all(self.store.pool())
            .await?
            .iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("tier")?)))
            .collect::<Result<_, StoreError>>()?;
        let tallies = self.tallies(&tiers, since, now).await?;
        let scopes = finish(&tallies, &tiers, since, now);
        drop(tallies);
        let took = started.elapsed();
        let took_ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
        let begin = match self.store.location().backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let mut rows = Vec::with_capacity(scopes.len());
        for (scope, stored) in scopes {
            let json = serde_json::to_string(&stored)
                .map_err(|e| corrupt(format!("cannot encode figures: {e}")))?;
            rows.push((scope, json));
        }
        // The write runs to completion in a task of its own, as the store's writes do: a
        // pass stopped midway (the server shutting down) must not leave its transaction, and
        // SQLite's write lock, to be undone later while others wait on it.
        let pool = self.store.pool().clone();
        let at = (now.as_millis(), since.as_millis());
        let write = tokio::spawn(async move {
            let mut tx = pool.begin_with(begin).await?;
            let newer = sqlx::query(
                "SELECT computed_at FROM vuln_figures WHERE scope = $1 AND computed_at > $2",
            )
            .bind(ALL)
            .bind(at.0)
            .fetch_optional(&mut *tx)
            .await?;
            if newer.is_some() {
                return Ok::<(), sqlx::Error>(());
            }
            sqlx::query("DELETE FROM vuln_figures")
                .execute(&mut *tx)
                .await?;
            for (scope, json) in rows {
                sqlx::query(
                    "INSERT INTO vuln_figures (scope, computed_at, since, marker, took_ms, figures) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(scope)
                .bind(at.0)
                .bind(at.1)
                .bind(marker)
                .bind(took_ms)
                .bind(json)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        });
        write
            .await
            .map_err(|e| corrupt(format!("the figures' write stopped: {e}")))??;
        Ok(took)
    }

    /// When the kept figures for all assets are as of, the change marker they include and
    /// how long they took to compute; `None` before the first pass.
    pub async fn kept_figures_state(
        &self,
    ) -> Result<Option<(Timestamp, i64, Duration)>, StoreError> {
        sqlx::query("SELECT computed_at, marker, took_ms FROM vuln_figures WHERE scope = $1")
            .bind(ALL)
            .fetch_optional(self.store.pool())
            .await?
            .map(|row| {
                let took: i64 = row.try_get("took_ms")?;
                Ok((
                    Timestamp::from_millis(row.try_get("computed_at")?),
                    row.try_get("marker")?,
                    Duration::from_millis(u64::try_from(took).unwrap_or(0)),
                ))
            })
            .transpose()
    }

    /// The kept figures for all assets, or for one (`None` until the first pass, or for an
    /// asset without figures yet).
    pub async fn kept_figures(
        &self,
        asset: Option<&str>,
    ) -> Result<Option<KeptFigures>, StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        let mut read = async |scope: &str| -> Result<Option<(KeptFigures, Stored)>, StoreError> {
            let Some(row) = sqlx::query(
                "SELECT computed_at, since, marker, took_ms, figures FROM vuln_figures WHERE scope = $1",
            )
            .bind(scope)
            .fetch_optional(&mut *conn)
            .await?
            else {
                return Ok(None);
            };
            let json: String = row.try_get("figures")?;
            let stored: Stored = serde_json::from_str(&json)
                .map_err(|e| corrupt(format!("kept figures of `{scope}`: {e}")))?;
            let took: i64 = row.try_get("took_ms")?;
            Ok(Some((
                KeptFigures {
                    computed_at: Timestamp::from_millis(row.try_get("computed_at")?),
                    since: Timestamp::from_millis(row.try_get("since")?),
                    marker: row.try_get("marker")?,
                    took: Duration::from_millis(u64::try_from(took).unwrap_or(0)),
                    stats: stored.stats()?,
                    burndown: stored
                        .burndown
                        .iter()
                        .map(|(at, open, overdue)| Point {
                            at: *at,
                            open: *open,
                            overdue: *overdue,
                        })
                        .collect(),
                    assets: Vec::new(),
                },
                stored,
            )))
        };
        let Some((mut all, stored)) = read(ALL).await? else {
            return Ok(None);
        };
        let assets: Vec<VulnAsset> = stored
            .assets
            .into_iter()
            .map(|(name, tier, open, overdue)| VulnAsset {
                name,
                tier,
                open,
                overdue,
            })
            .collect();
        let Some(asset) = asset else {
            all.assets = assets;
            return Ok(Some(all));
        };
        Ok(read(asset).await?.map(|(mut one, _)| {
            one.assets = assets;
            one
        }))
    }
}
