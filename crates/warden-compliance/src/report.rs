//! What the tests take beside the events (parameters, observations) and what they give.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::period::Period;
use crate::test_id::TestId;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// The limits the tests hold the evidence to, in milliseconds (`[compliance]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    /// How long a new account may be without a passkey.
    pub enrollment_window: i64,
    /// How long a leaver's access may outlive their disabling.
    pub deprovision_within: i64,
    /// How late a temporary grant may end.
    pub grant_grace: i64,
    /// The longest a group may go without a completed access review.
    pub review_every: i64,
    /// The longest an event may wait for a signed checkpoint that covers it.
    pub checkpoint_gap: i64,
    /// The longest idle timeout a browser session may have.
    pub web_idle_max: i64,
    /// The longest a browser session may last.
    pub web_lifetime_max: i64,
    /// The longest idle timeout an SSH session may have.
    pub ssh_idle_max: i64,
    /// The longest an SSH session may last.
    pub ssh_session_max: i64,
}

impl Default for Parameters {
    /// Limits an auditor of a SOC 2 Type 2 or HIPAA programme commonly accepts, met by
    /// Warden's own defaults.
    fn default() -> Self {
        Parameters {
            enrollment_window: 7 * DAY,
            deprovision_within: HOUR,
            grant_grace: MINUTE,
            review_every: 92 * DAY,
            checkpoint_gap: HOUR,
            web_idle_max: 30 * MINUTE,
            web_lifetime_max: 12 * HOUR,
            ssh_idle_max: HOUR,
            ssh_session_max: 24 * HOUR,
        }
    }
}

/// The settings in force when the report was made, as the server states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `identity.idle_timeout`.
    pub web_idle: i64,
    /// `identity.session_lifetime`.
    pub web_lifetime: i64,
    /// `ssh.idle_timeout`; `None` when sessions are never cut for idleness.
    pub ssh_idle: Option<i64>,
    /// `ssh.max_session`; `None` when sessions have no maximum.
    pub ssh_session: Option<i64>,
}

/// A signed checkpoint of the log, its signature and its consistency with the one before
/// already checked by whoever supplies it (the server, or the offline verifier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSeen {
    /// Events the checkpoint covers.
    pub size: u64,
    /// When it was signed, milliseconds.
    pub time: i64,
    /// Whether its signature verified and it extends the checkpoint before it.
    pub consistent: bool,
}

/// A session recording's state, as the server found it when it made the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RecordingState {
    /// Its bytes hash to what the log recorded.
    Intact,
    /// Its bytes hash to something else.
    Damaged {
        /// The SHA-256 the bytes have now.
        sha256: String,
    },
    /// It could not be read.
    Missing {
        /// Why.
        reason: String,
    },
}

/// What the server observed beside the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observations {
    /// The settings in force; `None` where not observed (the settings test then fails).
    pub settings: Option<Settings>,
    /// The signed checkpoints up to the end of the period and the first after it, in order.
    pub checkpoints: Vec<CheckpointSeen>,
    /// Each recording file named by a session in the period, and what was found. A file not
    /// listed was not checked, which fails the recording test for its session.
    pub recordings: BTreeMap<String, RecordingState>,
}

/// One member of a test's population: a sign-in, a leaver, a grant, a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What it is (`user:alice`, `grant:…`, `session:…`).
    pub subject: String,
    /// When it counts, milliseconds: the time that places it in the period.
    pub time: i64,
    /// The audit events it rests on, by sequence number.
    pub events: Vec<u64>,
    /// A measure where the test has one (time to deprovision, lateness), milliseconds.
    pub measure: Option<i64>,
    /// Why it is an exception; `None` when it passed.
    pub exception: Option<String>,
}

/// One test's result over a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Which test.
    pub id: TestId,
    /// How many items were tested.
    pub population: u64,
    /// How many of them are exceptions.
    pub exception_count: u64,
    /// Items not yet decidable when the period closed (a grant not yet due to end).
    pub pending: u64,
    /// The exceptions, in time order.
    pub exceptions: Vec<Item>,
    /// Every item, in time order, when asked for.
    pub items: Vec<Item>,
    /// Per day (days since the epoch, UTC): population and exceptions.
    pub days: BTreeMap<i64, (u64, u64)>,
}

impl TestResult {
    /// Whether the test passed: no exception.
    pub fn passed(&self) -> bool {
        self.exception_count == 0
    }
}

/// Gathers a test's items as its check finds them, keeping only those in the period.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    period: Period,
    keep_items: bool,
    /// The time of the event the check is seeing: an item timed later (a grant ended early
    /// counts at its expiry) waits in `ahead` until the period is closed, when it counts only
    /// if it falls before the end.
    pub(crate) now: i64,
    ahead: Vec<Item>,
    result: TestResult,
}

impl Tally {
    pub(crate) fn new(id: TestId, period: Period, keep_items: bool) -> Tally {
        Tally {
            period,
            keep_items,
            now: i64::MAX,
            ahead: Vec::new(),
            result: TestResult {
                id,
                population: 0,
                exception_count: 0,
                pending: 0,
                exceptions: Vec::new(),
                items: Vec::new(),
                days: BTreeMap::new(),
            },
        }
    }

    /// Whether a time falls within the period.
    pub(crate) fn in_period(&self, time: i64) -> bool {
        self.period.holds(time)
    }

    /// Counts an item whose time is in the period; ignores one outside it.
    pub(crate) fn item(&mut self, item: Item) {
        if !self.period.holds(item.time) {
            return;
        }
        if item.time > self.now {
            self.ahead.push(item);
        } else {
            self.count(item);
        }
    }

    fn count(&mut self, item: Item) {
        let day = item.time.div_euclid(DAY);
        let counts = self.result.days.entry(day).or_insert((0, 0));
        counts.0 += 1;
        self.result.population += 1;
        if item.exception.is_some() {
            counts.1 += 1;
            self.result.exception_count += 1;
            if self.keep_items {
                self.result.items.push(item.clone());
            }
            self.result.exceptions.push(item);
        } else if self.keep_items {
            self.result.items.push(item);
        }
    }

    /// Counts one item that cannot be decided yet.
    pub(crate) fn pending(&mut self) {
        self.result.pending += 1;
    }

    /// The period now starts at `from`, a later midnight (UTC): the items before it, whole
    /// days of them, are forgotten.
    pub(crate) fn start_at(&mut self, from: i64) {
        let day = from.div_euclid(DAY);
        let kept = self.result.days.split_off(&day);
        for (population, exceptions) in std::mem::replace(&mut self.result.days, kept).values() {
            self.result.population -= population;
            self.result.exception_count -= exceptions;
        }
        self.result.exceptions.retain(|i| i.time >= from);
        self.result.items.retain(|i| i.time >= from);
        self.ahead.retain(|i| i.time >= from);
        self.period = self.period.starting(from);
    }

    /// The period now ends at `to`, no earlier than the last event seen: what the check
    /// says from here on is said as of `to`.
    pub(crate) fn end_at(&mut self, to: i64) {
        self.period = self.period.ending(to);
        self.now = i64::MAX;
    }

    pub(crate) fn finish(mut self) -> TestResult {
        for item in std::mem::take(&mut self.ahead) {
            if self.period.holds(item.time) {
                self.count(item);
            }
        }
        self.result.exceptions.sort_by_key(|i| i.time);
        self.result.items.sort_by_key(|i| i.time);
        self.result
    }
}

/// An item that passed.
pub(crate) fn ok(subject: impl Into<String>, time: i64, events: Vec<u64>) -> Item {
    Item {
        subject: subject.into(),
        time,
        events,
        measure: None,
        exception: None,
    }
}

/// An item that is an exception.
pub(crate) fn exception(
    subject: impl Into<String>,
    time: i64,
    events: Vec<u64>,
    why: impl Into<String>,
) -> Item {
    Item {
        subject: subject.into(),
        time,
        events,
        measure: None,
        exception: Some(why.into()),
    }
}

/// A duration as people write it: `90 days`, `4 h`, `25 min`, `1.5 s`.
pub fn human(ms: i64) -> String {
    match ms {
        ms if ms >= DAY && ms % DAY == 0 => {
            warden_model::count(u64::try_from(ms / DAY).unwrap_or(0), "day", "days")
        }
        ms if ms >= HOUR && ms % HOUR == 0 => format!("{} h", ms / HOUR),
        ms if ms >= 2 * HOUR => format!("{:.1} h", ms as f64 / HOUR as f64),
        ms if ms >= MINUTE && ms % MINUTE == 0 => format!("{} min", ms / MINUTE),
        ms if ms >= MINUTE => format!("{:.1} min", ms as f64 / MINUTE as f64),
        ms if ms >= 1000 && ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms if ms >= 1000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{ms} ms"),
    }
}
