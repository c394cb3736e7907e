//! Running the tests over a stream of events.

use std::collections::BTreeMap;

use warden_audit::AuditEvent;

use crate::checks::{Check, End, check};
use crate::period::Period;
use crate::report::Tally;
use crate::report::{Observations, Parameters, TestResult};
use crate::test_id::TestId;

const DAY: i64 = 24 * 60 * 60 * 1000;

/// Runs tests over events pushed in sequence order, from the log's first event to the end of
/// the period; results count only what falls in the period.
///
/// An evaluator of an open period ([`Period::open`]) is kept up to date: the events pushed
/// as they come, [`Evaluator::results_at`] answers as of now without consuming it, and
/// [`Evaluator::start_at`] moves its start to a later midnight. It gives what a fresh
/// evaluator of the same period would.
pub struct Evaluator {
    period: Period,
    observations: Observations,
    checks: Vec<(Box<dyn Check>, Tally)>,
    /// Action → the checks that read it, learned as actions appear.
    routes: BTreeMap<String, Vec<usize>>,
    last_seq: u64,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("period", &self.period)
            .field("tests", &self.checks.len())
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl Evaluator {
    /// An evaluator of `tests`; with `keep_items`, each result lists its whole population.
    pub fn new(
        tests: &[TestId],
        period: Period,
        params: Parameters,
        observations: Observations,
        keep_items: bool,
    ) -> Evaluator {
        let checks = tests
            .iter()
            .map(|id| (check(*id, params), Tally::new(*id, period, keep_items)))
            .collect();
        Evaluator {
            period,
            observations,
            checks,
            routes: BTreeMap::new(),
            last_seq: 0,
        }
    }

    /// Sees the next event. Events at or after the period's end are not evidence for it and
    /// are ignored.
    pub fn push(&mut self, e: &AuditEvent) {
        if e.time >= self.period.end() {
            return;
        }
        self.last_seq = e.seq;
        if !self.routes.contains_key(&e.action) {
            let wanting = self
                .checks
                .iter()
                .enumerate()
                .filter(|(_, (check, _))| check.wants(&e.action))
                .map(|(i, _)| i)
                .collect();
            self.routes.insert(e.action.clone(), wanting);
        }
        let Some(route) = self.routes.get(&e.action) else {
            return;
        };
        for &i in route {
            if let Some((check, tally)) = self.checks.get_mut(i) {
                tally.now = e.time;
                check.see(e, tally);
            }
        }
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }

    /// Moves the period's start to `from`, a midnight (UTC) later than its start: what
    /// was kept only for earlier items is forgotten. Refused (false, nothing changed) for
    /// another time: results are kept per day.
    pub fn start_at(&mut self, from: i64) -> bool {
        if from.rem_euclid(DAY) != 0 || from <= self.period.from().as_millis() {
            return false;
        }
        for (check, tally) in &mut self.checks {
            check.start_at(from);
            tally.start_at(from);
        }
        self.period = self.period.starting(from);
        true
    }

    /// Each test's result for the period ending at `to` (no earlier than the last event
    /// pushed), with what the server observes now, in the order asked. The evaluator stays
    /// as it was, to take more events.
    pub fn results_at(&self, to: i64, observations: &Observations) -> Vec<TestResult> {
        let end = End {
            time: to,
            observations,
            last_seq: self.last_seq,
        };
        self.checks
            .iter()
            .map(|(check, tally)| {
                let mut tally = tally.clone();
                tally.end_at(to);
                check.finish(&end, &mut tally);
                tally.finish()
            })
            .collect()
    }

    /// Closes the period and gives each test's result, in the order asked.
    pub fn finish(self) -> Vec<TestResult> {
        let end = End {
            time: self.period.end(),
            observations: &self.observations,
            last_seq: self.last_seq,
        };
        self.checks
            .into_iter()
            .map(|(check, mut tally)| {
                tally.end_at(end.time);
                check.finish(&end, &mut tally);
                tally.finish()
            })
            .collect()
    }
}

/// Runs `tests` over `events` (in sequence order, from the log's first) for a period.
pub fn evaluate<'e>(
    tests: &[TestId],
    events: impl IntoIterator<Item = &'e AuditEvent>,
    period: Period,
    params: Parameters,
    observations: Observations,
    keep_items: bool,
) -> Vec<TestResult> {
    let mut evaluator = Evaluator::new(tests, period, params, observations, keep_items);
    for e in events {
        evaluator.push(e);
    }
    evaluator.finish()
}
