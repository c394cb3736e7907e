//! Compliance over GraphQL: each framework's controls with their tests' results over a period,
//! and one test's population and exceptions. Readers of the audit log may ask.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_compliance::{Framework, TestId, TestResult};
use warden_model::Timestamp;
use warden_runtime::compliance::{self, Asked, ComplianceError, Limits};
use warden_store::Store;

use super::Capability;
use super::audit::time;
use super::authz::authorize;
use super::{api_error, bad_input};
use crate::audit::AuditLog;
use crate::recordings::Recordings;

/// Most items one `complianceTest` returns.
const MAX_ITEMS: i32 = 10_000;

/// One member of a test's population.
#[derive(Debug, Clone, SimpleObject)]
pub struct ComplianceItem {
    /// What it is (`user:alice`, `grant:…`, `session:…`).
    pub subject: String,
    /// When it counts, RFC 3339 with milliseconds.
    pub time: String,
    /// The audit events it rests on, by sequence number.
    pub events: Vec<u64>,
    /// The test's measure for it (time to deprovision, lateness), milliseconds.
    pub measure_ms: Option<i64>,
    /// Why it is an exception; null when it passed.
    pub exception: Option<String>,
}

/// One day of a test's results.
#[derive(Debug, Clone, SimpleObject)]
pub struct ComplianceDay {
    /// The day, UTC (`2026-12-06`).
    pub day: String,
    /// Items tested that day.
    pub population: u64,
    /// Exceptions among them.
    pub exceptions: u64,
}

/// A test's result over the period.
#[derive(Debug, Clone, SimpleObject)]
pub struct ComplianceTestResult {
    /// The test's id (`leaver-deprovision`).
    pub id: String,
    /// What it shows when it passes.
    pub title: String,
    /// No exception.
    pub passed: bool,
    /// Items tested.
    pub population: u64,
    /// Exceptions among them.
    pub exception_count: u64,
    /// Items not yet decidable when the period closed.
    pub pending: u64,
    /// The exceptions, oldest first (at most `first`).
    pub exceptions: Vec<ComplianceItem>,
    /// The population, oldest first (at most `first`; only from `complianceTest`).
    pub items: Vec<ComplianceItem>,
    /// Per day, for the trend.
    pub days: Vec<ComplianceDay>,
}

/// One control and how its tests did.
#[derive(Debug, Clone, SimpleObject)]
pub struct ComplianceControl {
    /// The framework's reference (`CC6.1`).
    pub id: String,
    /// A short name.
    pub title: String,
    /// The framework's text.
    pub text: String,
    /// `pass`, `fail`, `nothing tested` (its tests found nothing to test in the period), or
    /// `not evidenced` (no test: left to the organisation).
    pub status: String,
    /// What Warden cannot evidence.
    pub not_evidenced: String,
    /// The tests that evidence it.
    pub tests: Vec<ComplianceTestResult>,
}

/// One framework's controls over a period.
#[derive(Debug, Clone, SimpleObject)]
pub struct ComplianceReport {
    /// `soc2` or `hipaa`.
    pub framework: String,
    /// The framework's name and edition.
    pub title: String,
    /// The shipped catalog's version.
    pub catalog_version: String,
    /// The period's start, RFC 3339.
    pub from: String,
    /// The period's end (exclusive), RFC 3339.
    pub to: String,
    /// When the results were computed, RFC 3339.
    pub computed_at: String,
    /// `monitor`: the compliance monitor's latest run (at most two `monitor_every` old),
    /// shown when no period is asked for and `fresh` is not; `live`: computed for this
    /// request.
    pub source: String,
    /// The controls, in the framework's order.
    pub controls: Vec<ComplianceControl>,
}

fn item(i: warden_compliance::Item) -> ComplianceItem {
    ComplianceItem {
        subject: i.subject,
        time: Timestamp::from_millis(i.time).rfc3339_millis(),
        events: i.events,
        measure_ms: i.measure,
        exception: i.exception,
    }
}

fn result(r: TestResult, first: usize) -> ComplianceTestResult {
    let passed = r.passed();
    ComplianceTestResult {
        id: r.id.as_str().to_owned(),
        title: r.id.title().to_owned(),
        passed,
        population: r.population,
        exception_count: r.exception_count,
        pending: r.pending,
        exceptions: r.exceptions.into_iter().take(first).map(item).collect(),
        items: r.items.into_iter().take(first).map(item).collect(),
        days: r
            .days
            .into_iter()
            .map(|(day, (population, exceptions))| ComplianceDay {
                day: Timestamp::from_millis(day * 86_400_000)
                    .to_string()
                    .chars()
                    .take(10)
                    .collect(),
                population,
                exceptions,
            })
            .collect(),
    }
}

/// Runs `asked` for a caller, turning failures into what the caller may see.
async fn run(
    ctx: &Context<'_>,
    caller: &super::Caller,
    asked: &Asked,
) -> async_graphql::Result<(warden_compliance::Period, Vec<TestResult>)> {
    let store = ctx.data::<Arc<Store>>()?;
    let audit = ctx.data::<AuditLog>()?;
    let recordings = ctx.data::<Recordings>()?;
    let limits = *ctx.data::<Limits>()?;
    let kept = ctx.data::<compliance::Kept>()?;
    compliance::results(store, audit, recordings, limits, kept, asked)
        .await
        .map_err(|e| match e {
            ComplianceError::Store(e) => api_error(e, caller),
            user @ (ComplianceError::Period(_) | ComplianceError::Empty) => bad_input(user),
            ours => {
                use async_graphql::ErrorExtensions;
                tracing::error!(error = %ours, "compliance results failed");
                async_graphql::Error::new(format!(
                    "internal error; quote request id {} to your operator",
                    caller.audit.request_id
                ))
                .extend_with(|_, e| e.set("code", "INTERNAL"))
            }
        })
}

/// Compliance reads. Each needs the `api.read_audit` capability (admin, auditor).
#[derive(Debug, Default)]
pub struct ComplianceQuery;

#[Object]
impl ComplianceQuery {
    /// Each framework's controls (or one framework's) with their tests' results over a
    /// period: `from` (RFC 3339; default the midnight UTC 90 days before `to`, or when the log
    /// began) to `to`
    /// (default now).
    async fn compliance_controls(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "`soc2` or `hipaa`; both when absent.")] framework: Option<String>,
        from: Option<String>,
        to: Option<String>,
        #[graphql(
            default,
            desc = "Compute now, even when the monitor's latest run could be shown."
        )]
        fresh: bool,
    ) -> async_graphql::Result<Vec<ComplianceReport>> {
        let caller = authorize(ctx, Capability::ReadAudit, "compliance").await?;
        let frameworks: Vec<Framework> = match framework.as_deref() {
            None | Some("") => Framework::ALL.to_vec(),
            Some(f) => vec![f.parse().map_err(bad_input)?],
        };
        let mut tests: Vec<TestId> = frameworks
            .iter()
            .flat_map(|f| f.catalog().tests())
            .collect();
        tests.sort_unstable();
        tests.dedup();
        let asked = Asked {
            tests,
            from: time("from", from)?,
            to: time("to", to)?,
            keep_items: false,
        };
        // The default period, not asked fresh: the monitor's latest run, if it is recent.
        let now = caller.audit.now;
        let kept = if asked.from.is_none() && asked.to.is_none() && !fresh {
            let store = ctx.data::<Arc<Store>>()?;
            let every = ctx.data::<Limits>()?.monitor_every;
            compliance::latest_run(store, now, every.saturating_mul(2))
                .await
                .map_err(|e| match e {
                    ComplianceError::Store(e) => api_error(e, caller),
                    other => bad_input(other),
                })?
        } else {
            None
        };
        let (period, results, computed_at, source) = match kept {
            Some((period, results, at)) => (period, results, at, "monitor"),
            None => {
                let (period, results) = run(ctx, caller, &asked).await?;
                (period, results, now, "live")
            }
        };
        let shown = |id: &TestId| {
            results
                .iter()
                .find(|r| r.id == *id)
                .map(|r| result(r.clone(), 100))
        };
        Ok(frameworks
            .into_iter()
            .map(|f| {
                let catalog = f.catalog();
                ComplianceReport {
                    framework: f.as_str().to_owned(),
                    title: catalog.title.clone(),
                    catalog_version: catalog.version.clone(),
                    from: period.from().rfc3339_millis(),
                    to: period.to().rfc3339_millis(),
                    computed_at: computed_at.rfc3339_millis(),
                    source: source.to_owned(),
                    controls: catalog
                        .controls
                        .iter()
                        .map(|c| {
                            let tests: Vec<ComplianceTestResult> =
                                c.tests.iter().filter_map(shown).collect();
                            let status = if tests.is_empty() {
                                "not evidenced"
                            } else if !tests.iter().all(|t| t.passed) {
                                "fail"
                            } else if tests.iter().all(|t| t.population == 0) {
                                // No exception, and no evidence either.
                                "nothing tested"
                            } else {
                                "pass"
                            };
                            ComplianceControl {
                                id: c.id.clone(),
                                title: c.title.clone(),
                                text: c.text.clone(),
                                status: status.to_owned(),
                                not_evidenced: c.not_evidenced.clone(),
                                tests,
                            }
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// One test over a period, with its exceptions and its population (at most `first` of
    /// each), for drilling down and for an auditor's own sampling.
    async fn compliance_test(
        &self,
        ctx: &Context<'_>,
        id: String,
        from: Option<String>,
        to: Option<String>,
        #[graphql(default = 1000)] first: i32,
    ) -> async_graphql::Result<ComplianceTestResult> {
        let caller = authorize(ctx, Capability::ReadAudit, "compliance").await?;
        let test: TestId = id.parse().map_err(bad_input)?;
        if !(1..=MAX_ITEMS).contains(&first) {
            return Err(bad_input(format!("`first` must be 1 to {MAX_ITEMS}")));
        }
        let asked = Asked {
            tests: vec![test],
            from: time("from", from)?,
            to: time("to", to)?,
            keep_items: true,
        };
        let (_, mut results) = run(ctx, caller, &asked).await?;
        let r = results
            .pop()
            .ok_or_else(|| bad_input(format!("no result for `{test}`")))?;
        Ok(result(r, usize::try_from(first).unwrap_or(1)))
    }
}
