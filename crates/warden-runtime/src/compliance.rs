//! Compliance results as the server computes them: the log's events, from its first to the
//! end of the period, streamed through `warden-compliance`'s tests beside what the server
//! observes (the settings in force, the signed checkpoints, the session recordings' hashes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use warden_audit::{AuditEvent, ExportLine, Hash, HexHash};
use warden_compliance::bundle::{self, Builder, ContextEvent, Evidence};
use warden_compliance::{
    CheckpointSeen, Evaluator, Framework, Observations, Parameters, Period, PeriodError,
    RecordingState, Settings, TestId, TestResult,
};
use warden_model::Timestamp;
use warden_store::{EventFilter, Store, StoreError};

use crate::audit::AuditLog;
use crate::config::Config;
use crate::recordings::{Checked, Recordings};

/// Events read from the store at a time.
const PAGE: u32 = 5000;

/// Pages of the period read at once for a bundle.
const READERS: usize = 4;

/// The default period: from the midnight (UTC) 90 days before its end, or since the log
/// began if that is later. Starting at a midnight, it moves a whole day at a time, which lets
/// the kept evaluator ([`Kept`]) follow it.
const DEFAULT_SPAN: Duration = Duration::from_secs(90 * 24 * 3600);

/// A day, in milliseconds.
const DAY: i64 = 24 * 3600 * 1000;

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The tests to run.
    pub tests: Vec<TestId>,
    /// The period's start; `None` for the midnight (UTC) 90 days before its end, or the log's
    /// beginning.
    pub from: Option<Timestamp>,
    /// The period's end; `None` for now.
    pub to: Option<Timestamp>,
    /// Whether each result lists its whole population.
    pub keep_items: bool,
}

/// Why results could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    /// The period cannot be reported on.
    #[error(transparent)]
    Period(#[from] PeriodError),
    /// The log has no event yet.
    #[error("the audit log is empty: there is no evidence yet")]
    Empty,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The thread running the tests failed.
    #[error("the compliance tests stopped: {0}")]
    Stopped(String),
    /// The bundle could not be made (a proof or the archive failed).
    #[error("cannot make the evidence bundle: {0}")]
    Bundle(String),
}

/// What the tests need from the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `[compliance]`.
    pub params: Parameters,
    /// The session settings in force.
    pub settings: Settings,
    /// How often the monitor reruns every test (`compliance.monitor_every`).
    pub monitor_every: Duration,
}

impl Limits {
    /// The limits of a configuration.
    pub fn of(config: &Config) -> Limits {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Limits {
            params: config.compliance,
            settings: Settings {
                web_idle: ms(config.identity.idle_timeout),
                web_lifetime: ms(config.identity.session_lifetime),
                ssh_idle: config.ssh.idle_timeout.map(ms),
                ssh_session: config.ssh.max_session.map(ms),
            },
            monitor_every: config.compliance_monitor_every,
        }
    }
}

/// The evaluator of the default period up to now, kept between runs: each fresh status and
/// each monitor run reads only the events written since the one before, and moves its start
/// a day at a time, rather than reading the log again. One per server process; rebuilt from
/// the log when the limits change, when the log's first event moves (an archive), or after
/// a failed read.
#[derive(Clone, Default)]
pub struct Kept(Arc<tokio::sync::Mutex<Option<Warm>>>);

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kept(..)")
    }
}

/// A kept evaluator and what it was built on.
struct Warm {
    evaluator: Evaluator,
    /// The log's first sequence number when it was built, and that event's time.
    log_first: u64,
    began: Timestamp,
    params: Parameters,
    /// The next event to read: every earlier one was pushed, or skipped as no test reads it.
    next: u64,
}

/// The first sequence number within the longest reach of the frequent kinds before the
/// period ([`bundle::longest_reach`]); past the log's end when nothing is that recent.
async fn reach_cut(store: &Store, period: Period, params: &Parameters) -> Result<u64, StoreError> {
    let at = period
        .from()
        .as_millis()
        .saturating_sub(bundle::longest_reach(params));
    Ok(
        match store
            .first_seq_at_or_after(Timestamp::from_millis(at))
            .await?
        {
            Some(seq) => seq,
            None => store.audit_size().await?.saturating_add(1),
        },
    )
}

/// The events from `first` up to `cut` (excluded) of the kinds the tests read from anywhere
/// in the log ([`bundle::Reach::Always`]), in sequence order: each kind read through the
/// log's index on actions, so the frequent kinds before the reach are never read.
async fn rare_before(
    store: &Store,
    first: u64,
    cut: u64,
    params: &Parameters,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut rare = Vec::new();
    for action in warden_model::Change::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|a| bundle::reach(a, params) == bundle::Reach::Always)
    {
        kind_between(store, action, first, cut, &mut rare).await?;
    }
    rare.sort_by_key(|e| e.seq);
    Ok(rare)
}

/// The events with `action` from `first` up to `before` (excluded), through the log's index
/// on actions, appended to `out`.
async fn kind_between(
    store: &Store,
    action: &str,
    first: u64,
    before: u64,
    out: &mut Vec<AuditEvent>,
) -> Result<(), StoreError> {
    let mut after = first.saturating_sub(1);
    loop {
        let filter = EventFilter {
            action: Some(action.to_owned()),
            after_seq: Some(after),
            before_seq: Some(before),
            ..EventFilter::default()
        };
        let page = store.events(&filter, PAGE).await?;
        let Some(last) = page.last().map(|e| e.seq) else {
            return Ok(());
        };
        let full = page.len() == PAGE as usize;
        out.extend(page);
        after = last;
        if !full {
            return Ok(());
        }
    }
}

/// The events before `first` (the period's first) that the period's tests read
/// ([`bundle::context_needed`]), in sequence order: each kind read through the log's index on
/// actions, from the log's start for the rare kinds, from as far back as it reaches for the
/// frequent ones; no other event is read.
async fn context_before(
    store: &Store,
    log_first: u64,
    first: u64,
    period: Period,
    params: &Parameters,
) -> Result<Vec<AuditEvent>, StoreError> {
    let mut starts: BTreeMap<i64, Option<u64>> = BTreeMap::new();
    let mut context = Vec::new();
    for action in warden_model::Change::ALL.iter().map(|c| c.as_str()) {
        let from = match bundle::reach(action, params) {
            bundle::Reach::Never => continue,
            bundle::Reach::Always => Some(log_first),
            bundle::Reach::Within(span) => match starts.get(&span) {
                Some(start) => *start,
                None => {
                    let at = Timestamp::from_millis(period.from().as_millis().saturating_sub(span));
                    let start = store.first_seq_at_or_after(at).await?;
                    starts.insert(span, start);
                    start
                }
            },
        };
        if let Some(from) = from.filter(|f| *f < first) {
            kind_between(store, action, from.max(log_first), first, &mut context).await?;
        }
    }
    context.retain(|e| bundle::context_needed(e, period, params));
    context.sort_by_key(|e| e.seq);
    Ok(context)
}

/// The monitor's latest run, if it began within `max_age` of `now`: its period, its results
/// (every test, no populations) and when it began.
pub async fn latest_run(
    store: &Store,
    now: Timestamp,
    max_age: Duration,
) -> Result<Option<(Period, Vec<TestResult>, Timestamp)>, ComplianceError> {
    let Some((at, from, to, json)) = store.compliance_run().await? else {
        return Ok(None);
    };
    let max_age = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    if now.as_millis().saturating_sub(at.as_millis()) > max_age {
        return Ok(None);
    }
    let Some(period) = Period::recorded(from.as_millis(), to.as_millis()) else {
        return Ok(None);
    };
    // A run kept by an older release that no longer reads is recomputed, not an error.
    Ok(serde_json::from_str(&json)
        .ok()
        .map(|results| (period, results, at)))
}

/// Computes the results of `asked` over the log. The default period (no `from`, no `to`,
/// no populations) is answered by the kept evaluator; any other by reading the log.
pub async fn results(
    store: &Arc<Store>,
    audit: &AuditLog,
    recordings: &Recordings,
    limits: Limits,
    kept: &Kept,
    asked: &Asked,
) -> Result<(Period, Vec<TestResult>), ComplianceError> {
    if asked.from.is_none() && asked.to.is_none() && !asked.keep_items {
        return kept_results(store, audit, recordings, limits, kept, &asked.tests).await;
    }
    let (period, first_seq) = period_of(store, audit, asked).await?;
    let observations = observe(store, audit, recordings, limits.settings, period).await?;
    let evaluator = Evaluator::new(
        &asked.tests,
        period,
        limits.params,
        observations,
        asked.keep_items,
    );
    // Before the reach of the frequent kinds, only the rare kinds the tests read from the
    // whole log; from there on, every event up to the period's end.
    let cut = reach_cut(store, period, &limits.params).await?;
    let (evaluator, _) = feed(
        store,
        evaluator,
        first_seq,
        cut,
        Some(period.to()),
        &limits.params,
    )
    .await?;
    let results = tokio::task::spawn_blocking(move || evaluator.finish())
        .await
        .map_err(|e| ComplianceError::Stopped(e.to_string()))?;
    Ok((period, results))
}

impl Kept {
    /// Brings the kept evaluator up to date with the log: built from it the first time (or
    /// when it cannot be kept), then fed the events written since, its start moved to the
    /// default period's. Runs as a task of its own, so a caller that gives up waiting (a
    /// request past its timeout) does not throw the work away: the next caller finds it done.
    pub async fn refresh(
        &self,
        store: &Arc<Store>,
        audit: &AuditLog,
        params: Parameters,
    ) -> Result<(), ComplianceError> {
        let slot = self.0.clone();
        let store = store.clone();
        let audit = audit.clone();
        tokio::spawn(async move {
            let mut slot = slot.lock_owned().await;
            let warm = bring_up_to_date(&store, &audit, params, slot.take()).await?;
            *slot = Some(warm);
            Ok(())
        })
        .await
        .map_err(|e| ComplianceError::Stopped(e.to_string()))?
    }
}

/// The kept evaluator `warm` (if it can be kept) or a new one, fed every event of the log it
/// has not seen, its start moved to the default period's.
async fn bring_up_to_date(
    store: &Store,
    audit: &AuditLog,
    params: Parameters,
    warm: Option<Warm>,
) -> Result<Warm, ComplianceError> {
    let (log_first, began) = log_start(store, audit).await?;
    let from = default_from(Timestamp::from_system(SystemTime::now()), began);
    let mut reusable = warm.filter(|w| w.log_first == log_first && w.params == params);
    if let Some(w) = &mut reusable
        && w.evaluator.period().from() != from
        && !w.evaluator.start_at(from.as_millis())
    {
        reusable = None;
    }
    let mut warm = reusable.unwrap_or_else(|| Warm {
        evaluator: Evaluator::new(
            &TestId::ALL,
            Period::open(from.as_millis()),
            params,
            Observations::default(),
            false,
        ),
        log_first,
        began,
        params,
        next: log_first,
    });
    // Built now: only the rare kinds before the frequent kinds' reach. Kept: everything new.
    let cut = if warm.next == log_first {
        reach_cut(store, Period::open(from.as_millis()), &params).await?
    } else {
        warm.next
    };
    let (evaluator, last) = feed(store, warm.evaluator, warm.next, cut, None, &params).await?;
    warm.evaluator = evaluator;
    warm.next = last.map_or(warm.next.max(cut), |seq| seq + 1);
    Ok(warm)
}

/// The default period's results from the kept evaluator, brought up to date first.
async fn kept_results(
    store: &Arc<Store>,
    audit: &AuditLog,
    recordings: &Recordings,
    limits: Limits,
    kept: &Kept,
    tests: &[TestId],
) -> Result<(Period, Vec<TestResult>), ComplianceError> {
    kept.refresh(store, audit, limits.params).await?;
    let slot = kept.0.lock().await;
    let warm = slot
        .as_ref()
        .ok_or_else(|| ComplianceError::Stopped("the kept evaluator is gone".to_owned()))?;
    let from = warm.evaluator.period().from();
    let now = Timestamp::from_system(SystemTime::now());
    let period = Period::new(from, now, now, Some(warm.began))?;
    let observations = observe(store, audit, recordings, limits.settings, period).await?;
    let all = warm.evaluator.results_at(now.as_millis(), &observations);
    Ok((
        period,
        tests
            .iter()
            .filter_map(|id| all.iter().find(|r| r.id == *id).cloned())
            .collect(),
    ))
}

/// Streams events into `evaluator` on a blocking thread, page by page while the next page is
/// read: from `first`, only the kinds the tests read from the whole log until `cut`, then
/// every event (before `until`, if given). Gives the evaluator back with the last sequence
/// number read from `cut` on, if any.
async fn feed(
    store: &Store,
    evaluator: Evaluator,
    first: u64,
    cut: u64,
    until: Option<Timestamp>,
    params: &Parameters,
) -> Result<(Evaluator, Option<u64>), ComplianceError> {
    let (pages, mut received) = tokio::sync::mpsc::channel::<Vec<AuditEvent>>(4);
    let tested = tokio::task::spawn_blocking(move || {
        let mut evaluator = evaluator;
        while let Some(page) = received.blocking_recv() {
            for e in &page {
                evaluator.push(e);
            }
        }
        evaluator
    });
    let read = async {
        if cut > first {
            let rare = rare_before(store, first, cut, params).await?;
            for chunk in rare.chunks(PAGE as usize) {
                if pages.send(chunk.to_vec()).await.is_err() {
                    return Ok(None);
                }
            }
        }
        let mut after = cut.max(first).saturating_sub(1);
        let mut last = None;
        loop {
            let filter = EventFilter {
                after_seq: Some(after),
                until,
                ..EventFilter::default()
            };
            let page = store.events(&filter, PAGE).await?;
            let Some(end) = page.last().map(|e| e.seq) else {
                break;
            };
            after = end;
            last = Some(end);
            let full = page.len() == PAGE as usize;
            if pages.send(page).await.is_err() || !full {
                break;
            }
        }
        Ok::<_, StoreError>(last)
    };
    let read = read.await;
    drop(pages);
    let evaluator = tested
        .await
        .map_err(|e| ComplianceError::Stopped(e.to_string()))?;
    Ok((evaluator, read?))
}

/// A signed evidence bundle (zip bytes) for `framework` over the period asked, and the
/// sequence numbers of the period's first and last events.
pub async fn evidence(
    store: &Store,
    audit: &AuditLog,
    recordings: &Recordings,
    limits: Limits,
    framework: Framework,
    asked: &Asked,
) -> Result<(Vec<u8>, Period, u64, u64), ComplianceError> {
    let (period, log_first) = period_of(store, audit, asked).await?;
    let size = store.audit_size().await?;
    let first = store
        .first_seq_at_or_after(period.from())
        .await?
        .unwrap_or(size + 1);
    let last = store
        .first_seq_at_or_after(period.to())
        .await?
        .map_or(size, |s| s - 1)
        .max(first - 1);
    let head = audit
        .export_head(first, last)
        .await
        .map_err(bundle_failed)?;
    let verifier = audit.verifier();
    let signed: Vec<u64> = head
        .iter()
        .filter_map(|l| match l {
            ExportLine::Checkpoint { note, .. } => verifier.open(note).ok().map(|c| c.size),
            _ => None,
        })
        .collect();
    let proof_size = signed.last().copied().unwrap_or(size);
    let earlier = context_before(store, log_first, first, period, &limits.params).await?;
    let seqs: Vec<u64> = earlier.iter().map(|e| e.seq).collect();
    let proofs = audit
        .inclusions(&seqs, proof_size)
        .await
        .map_err(bundle_failed)?;
    let context: Vec<ContextEvent> = earlier
        .into_iter()
        .zip(proofs)
        .map(|(event, proof)| ContextEvent {
            event,
            size: proof_size,
            proof: proof.into_iter().map(HexHash).collect(),
        })
        .collect();
    let mut observations = observe(store, audit, recordings, limits.settings, period).await?;
    let signed: std::collections::BTreeSet<u64> = signed.into_iter().collect();
    observations
        .checkpoints
        .retain(|c| signed.contains(&c.size));
    let evidence = Evidence {
        framework,
        period,
        generated_at: Timestamp::from_system(SystemTime::now()).as_millis(),
        parameters: limits.params,
        observations,
        export_head: head,
        events: Vec::new(),
        context,
    };
    // The period's events with their recorded leaf hashes, a page at a time: the bundle
    // tests and writes each page (seconds of CPU, off the runtime's workers) while the next
    // is read.
    let (pages, mut received) = tokio::sync::mpsc::channel::<Vec<(AuditEvent, Hash)>>(2);
    let fed = tokio::task::spawn_blocking(move || {
        let mut bundle = Builder::new(evidence);
        while let Some(page) = received.blocking_recv() {
            bundle.push(page)?;
        }
        Ok::<_, String>(bundle)
    });
    // A few pages are read at once, each on its own connection, and handed on in order:
    // one connection's reads wait on handing rows between threads more than on either core.
    // A read that fails returns here, so only a period read to its end is signed below.
    let ranges = (first..=last)
        .step_by(PAGE as usize)
        .map(|from| (from, last.min(from.saturating_add(PAGE.into()) - 1)));
    let mut read = futures_util::stream::iter(ranges)
        .map(|(from, to)| store.event_range(from, to))
        .buffered(READERS);
    while let Some(page) = read.next().await {
        // A builder that stopped says why below.
        if pages.send(page?).await.is_err() {
            break;
        }
    }
    drop(pages);
    let bundle = fed.await.map_err(bundle_failed)?.map_err(bundle_failed)?;
    let log = audit.clone();
    let zip = tokio::task::spawn_blocking(move || log.sign_evidence(bundle))
        .await
        .map_err(bundle_failed)?
        .map_err(bundle_failed)?;
    Ok((zip, period, first, last))
}

fn bundle_failed(e: impl std::fmt::Display) -> ComplianceError {
    ComplianceError::Bundle(e.to_string())
}

/// The sequence number of the log's first event (older ones may have been archived) and its
/// time.
async fn log_start(store: &Store, audit: &AuditLog) -> Result<(u64, Timestamp), ComplianceError> {
    let first_seq = store
        .audit_first_seq()
        .await?
        .ok_or(ComplianceError::Empty)?;
    let began = audit
        .event(first_seq)
        .await
        .ok()
        .flatten()
        .map(|e| Timestamp::from_millis(e.time))
        .ok_or(ComplianceError::Empty)?;
    Ok((first_seq, began))
}

/// The default period's start for a period ending at `to`: the midnight (UTC) 90 days
/// before, or the second the log began if that is later.
fn default_from(to: Timestamp, began: Timestamp) -> Timestamp {
    let span = to.as_millis() - i64::try_from(DEFAULT_SPAN.as_millis()).unwrap_or(0);
    let midnight = span - span.rem_euclid(DAY);
    Timestamp::from_millis(midnight.max(began.as_millis() - began.as_millis().rem_euclid(1000)))
}

/// The period asked, checked against now and the log's beginning, and the sequence number of
/// the log's first event.
async fn period_of(
    store: &Store,
    audit: &AuditLog,
    asked: &Asked,
) -> Result<(Period, u64), ComplianceError> {
    let now = Timestamp::from_system(SystemTime::now());
    let (first_seq, began) = log_start(store, audit).await?;
    let to = asked.to.unwrap_or(now);
    let from = asked.from.unwrap_or_else(|| default_from(to, began));
    Ok((Period::new(from, to, now, Some(began))?, first_seq))
}

/// Continuous monitoring: every `every`, runs every test over the default period (the last
/// 90 days, with the kept evaluator) and records each test that starts failing (`compliance.test.fail`) or recovers
/// (`compliance.test.pass`), so webhooks and log sinks alert on it. Runs until dropped.
pub async fn monitor(
    store: Arc<Store>,
    audit: AuditLog,
    recordings: Recordings,
    limits: Limits,
    kept: Kept,
    every: Duration,
) {
    // The first run waits one interval: a server just started has little to say.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let asked = Asked {
        tests: TestId::ALL.to_vec(),
        from: None,
        to: None,
        keep_items: false,
    };
    // The kept evaluator is built now, in the background, rather than by the first status
    // asked (on a large log that takes longer than a request may).
    match kept.refresh(&store, &audit, limits.params).await {
        Ok(()) | Err(ComplianceError::Empty) => {}
        Err(e) => tracing::error!(error = %e, "the compliance monitor cannot read the log"),
    }
    loop {
        tick.tick().await;
        let began = Timestamp::from_system(SystemTime::now());
        let (period, results) =
            match results(&store, &audit, &recordings, limits, &kept, &asked).await {
                Ok(done) => done,
                Err(ComplianceError::Empty) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "the compliance monitor cannot compute its tests");
                    continue;
                }
            };
        // Kept for `compliance status` and the console, which show it rather than reading the
        // whole log again. Stamped with when the run began: nothing after is in it.
        match serde_json::to_string(&results) {
            Ok(json) => {
                if let Err(e) = store
                    .save_compliance_run(began, period.from(), period.to(), &json)
                    .await
                {
                    tracing::error!(error = %e, "cannot keep the compliance monitor's run");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the compliance monitor's run"),
        }
        for r in results {
            let first = r.exceptions.first();
            let details = serde_json::json!({
                "test": r.id.as_str(),
                "title": r.id.title(),
                "population": r.population,
                "exceptions": r.exception_count,
                "pending": r.pending,
                "from": period.from().rfc3339_millis(),
                "to": period.to().rfc3339_millis(),
                "first_exception": first.map(|i| serde_json::json!({
                    "subject": i.subject,
                    "time": Timestamp::from_millis(i.time).rfc3339_millis(),
                    "exception": i.exception,
                    "events": i.events,
                })),
            });
            let recorded = store
                .record_compliance_state(
                    &crate::timers::system(),
                    r.id.as_str(),
                    r.passed(),
                    r.exception_count,
                    details,
                )
                .await;
            match recorded {
                Ok(true) if r.passed() => tracing::info!(test = %r.id, "compliance test passes"),
                Ok(true) => {
                    tracing::warn!(test = %r.id, exceptions = r.exception_count, "compliance test fails");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, test = %r.id, "cannot record a compliance test's state")
                }
            }
        }
    }
}

/// What the server observes beside the log for a period.
async fn observe(
    store: &Store,
    audit: &AuditLog,
    recordings: &Recordings,
    settings: Settings,
    period: Period,
) -> Result<Observations, StoreError> {
    let verifier = audit.verifier();
    let through = store.last_seq_before(period.to()).await?.unwrap_or(0);
    // The checkpoints that can cover the period's events: from the one just before its first.
    let first = store
        .first_seq_at_or_after(period.from())
        .await?
        .unwrap_or(through + 1);
    let mut stored = store
        .checkpoints_between(first.saturating_sub(1), through)
        .await?;
    if let Some(next) = store.checkpoint_at_or_after(through + 1).await? {
        stored.push(next);
    }
    let checkpoints = stored
        .into_iter()
        .map(|c| CheckpointSeen {
            size: c.size,
            time: c.time.as_millis(),
            consistent: verifier
                .open(&c.note)
                .is_ok_and(|opened| opened.size == c.size),
        })
        .collect();
    let mut files = BTreeMap::new();
    for session in store
        .ssh_sessions_ended_between(period.from(), period.to())
        .await?
    {
        for (file, recorded) in recorded_files(&session.recordings) {
            let state = match recordings.read_checked(&file, &recorded).await {
                Checked::Intact(_) => RecordingState::Intact,
                Checked::Damaged { sha256 } => RecordingState::Damaged { sha256 },
                Checked::Unreadable(reason) => RecordingState::Missing { reason },
            };
            files.insert(file, state);
        }
    }
    Ok(Observations {
        settings: Some(settings),
        checkpoints,
        recordings: files,
    })
}

/// Each recording file a session's record names, with the SHA-256 the log recorded.
fn recorded_files(recordings: &serde_json::Value) -> Vec<(String, String)> {
    let pair = |v: &serde_json::Value| {
        Some((
            v.get("file")?.as_str()?.to_owned(),
            v.get("sha256")?.as_str()?.to_owned(),
        ))
    };
    recordings
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            pair(r)
                .into_iter()
                .chain(r.get("transcript").and_then(pair))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use warden_compliance::bundle::{Reach, reach};
    use warden_compliance::{Parameters, Period};
    use warden_model::{Actor, Timestamp};
    use warden_store::{AuditContext, DatabaseLocation, Outcome, Store};

    use super::{DAY, context_before, default_from, rare_before, reach_cut};

    /// A SQLite log of events (time, action, target) recorded by the operator, in order.
    async fn log_of(
        events: impl IntoIterator<Item = (i64, &'static str, String)>,
    ) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&DatabaseLocation::in_data_dir(dir.path()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for (n, (time, action, target)) in events.into_iter().enumerate() {
            let ctx = AuditContext {
                actor: Actor::Operator,
                request_id: format!("r{n}"),
                source: None,
                now: Timestamp::from_millis(time),
            };
            store
                .record(
                    &ctx,
                    action,
                    &target,
                    serde_json::json!({}),
                    Outcome::Success,
                    None,
                )
                .await
                .unwrap();
        }
        (dir, store)
    }

    /// The default period starts at a midnight (UTC), so the kept evaluator can follow it a
    /// day at a time: the one 90 days before its end, or the second the log began if later.
    #[test]
    fn the_default_period_starts_at_the_midnight_90_days_back() {
        let to = Timestamp::from_millis(1_800_000_123_456);
        let from = default_from(to, Timestamp::from_millis(1_000)).as_millis();
        assert_eq!(from.rem_euclid(DAY), 0);
        let span = to.as_millis() - from;
        assert!((90 * DAY..91 * DAY).contains(&span), "{span}");
        let began = Timestamp::from_millis(1_799_000_000_900);
        assert_eq!(default_from(to, began).as_millis(), 1_799_000_000_000);
    }

    /// A log spanning 200 days, read for a period starting 60 days ago: before the frequent
    /// kinds' reach (31 days before the period) only the rare kinds are read, through the
    /// index on actions, in sequence order; from the reach on, everything is.
    #[tokio::test]
    async fn before_the_reach_only_the_rare_kinds_are_read() {
        let t0: i64 = 1_800_000_000_000;
        let (_dir, store) = log_of(
            [
                (200, "user.create", "user:old"),
                (199, "auth.login", "idp:x"),
                (150, "group.create", "group:ancient"),
                (100, "auth.login", "idp:x"),
                (95, "review.create", "review:r1"),
                (10, "auth.login", "idp:x"),
                (5, "group.create", "group:new"),
            ]
            .map(|(ago, action, target)| (t0 - ago * DAY, action, target.to_owned())),
        )
        .await;
        let params = Parameters::default();
        let period = Period::recorded(t0 - 60 * DAY, t0).unwrap();
        let first = store.audit_first_seq().await.unwrap().unwrap();
        let cut = reach_cut(&store, period, &params).await.unwrap();
        let rare = rare_before(&store, first, cut, &params).await.unwrap();
        let read: Vec<&str> = rare.iter().map(|e| e.target.as_str()).collect();
        assert_eq!(read, ["user:old", "group:ancient", "review:r1"]);
        assert!(rare.windows(2).all(|w| w[0].seq < w[1].seq));
        // The cut is the first event within 31 days before the period: the login 10 days ago.
        let at_cut = store
            .events(
                &warden_store::EventFilter {
                    after_seq: Some(cut - 1),
                    ..warden_store::EventFilter::default()
                },
                1,
            )
            .await
            .unwrap();
        assert_eq!(at_cut[0].time, t0 - 10 * DAY);
    }

    /// The rare kinds are read by name from the log's changes: each must be one, or it would
    /// silently be left out of status and evidence.
    #[test]
    fn every_kind_read_from_the_whole_log_is_a_change() {
        let params = Parameters::default();
        let changes: Vec<&str> = warden_model::Change::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        for action in [
            "user.create",
            "user.disable",
            "user.delete",
            "user.enable",
            "passkey.reset",
            "group.create",
            "group.delete",
            "policy.apply",
            "vuln.sla.half",
            "vuln.sla.breach",
            "vuln.accept",
            "vuln.false_positive",
            "vuln.fix.available",
            "vuln.rate",
            "review.create",
            "break_glass.use",
        ] {
            assert_eq!(reach(action, &params), Reach::Always, "{action}");
            assert!(changes.contains(&action), "{action} is not a change");
        }
        for action in [
            "auth.login",
            "auth.enroll",
            "auth.passkey",
            "passkey.register",
            "ssh.session.start",
            "ssh.session.end",
            "access.approve",
        ] {
            assert!(
                matches!(reach(action, &params), Reach::Within(_)),
                "{action}"
            );
            assert!(changes.contains(&action), "{action} is not a change");
        }
    }

    /// A bundle's context, read kind by kind through the index on actions, is exactly the
    /// events before the period that `context_needed` keeps: each kind as far back as it
    /// reaches, the rare kinds from the log's start, nothing else.
    #[tokio::test]
    async fn the_context_is_what_the_tests_read_before_the_period() {
        let t0: i64 = 1_800_000_000_000;
        let hours = |h: i64| h * DAY / 24;
        let (_dir, store) = log_of(
            [
                (hours(200 * 24), "user.create"),
                (hours(100 * 24), "access.approve"),
                (hours(95 * 24), "ssh.session.start"),
                (hours(80 * 24), "access.approve"),
                (hours(62 * 24), "auth.login"),
                (hours(61 * 24 + 12), "ssh.session.start"),
                (hours(60 * 24 + 12), "auth.login"),
                (hours(60 * 24 + 6), "ssh.cert.issue"),
                (hours(60 * 24 + 1), "ssh.session.end"),
                (hours(59 * 24), "auth.login"),
                (hours(30 * 24), "group.create"),
            ]
            .into_iter()
            .enumerate()
            .map(|(n, (ago, action))| (t0 - ago, action, format!("thing:{n}"))),
        )
        .await;
        let params = Parameters::default();
        let period = Period::recorded(t0 - 60 * DAY, t0).unwrap();
        let log_first = store.audit_first_seq().await.unwrap().unwrap();
        let first = store
            .first_seq_at_or_after(period.from())
            .await
            .unwrap()
            .unwrap();
        let context = context_before(&store, log_first, first, period, &params)
            .await
            .unwrap();
        let all = store
            .events(&warden_store::EventFilter::default(), 1000)
            .await
            .unwrap();
        let expected: Vec<_> = all
            .into_iter()
            .filter(|e| {
                e.seq < first && warden_compliance::bundle::context_needed(e, period, &params)
            })
            .collect();
        assert_eq!(context, expected);
        let read: Vec<&str> = context.iter().map(|e| e.target.as_str()).collect();
        // The account always; the approval within 31 days; the sessions within a day and
        // the longest session; the login within a day; not the certificate.
        assert_eq!(
            read,
            ["thing:0", "thing:3", "thing:5", "thing:6", "thing:8"]
        );
    }
}
