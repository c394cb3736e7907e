//! The log itself: no event missing, every event under a consistent signed checkpoint soon
//! enough.

use warden_audit::AuditEvent;

use super::{Check, End};
use crate::report::Parameters;
use crate::report::{Tally, exception, human, ok};

/// The period's events, seen in sequence order, as runs of consecutive sequence numbers and
/// their times: what is needed to say which event each checkpoint was the first to cover,
/// whichever checkpoints the server observes when the period closes (8 bytes an event).
#[derive(Debug, Default)]
struct Times {
    /// (first sequence number of a run, index of its first time in `times`).
    runs: Vec<(u64, usize)>,
    times: Vec<i64>,
}

impl Times {
    fn push(&mut self, seq: u64, time: i64) {
        let next = self
            .runs
            .last()
            .map(|(first, at)| first + (self.times.len() - at) as u64);
        if next != Some(seq) {
            self.runs.push((seq, self.times.len()));
        }
        self.times.push(time);
    }

    /// The first event with a sequence number in `(after, upto]`: its time and number.
    fn first_in(&self, after: u64, upto: u64) -> Option<(i64, u64)> {
        // The run holding `after + 1`, or the first run after it.
        let i = self.runs.partition_point(|(first, _)| *first <= after + 1);
        let (seq, at) = match i.checked_sub(1).and_then(|i| self.runs.get(i)) {
            Some(&(first, at)) => {
                let end = self.runs.get(i).map_or(self.times.len(), |r| r.1);
                let within = usize::try_from(after + 1 - first).unwrap_or(usize::MAX);
                if within < end - at {
                    (after + 1, at + within)
                } else {
                    *self.runs.get(i)?
                }
            }
            None => *self.runs.first()?,
        };
        (seq <= upto).then(|| self.times.get(at).map(|t| (*t, seq)))?
    }

    /// Forgets the events before `from` (a prefix: times follow sequence numbers).
    fn drop_before(&mut self, from: i64) {
        let cut = self.times.partition_point(|t| *t < from);
        if cut == 0 {
            return;
        }
        self.times.drain(..cut);
        let mut runs = Vec::with_capacity(self.runs.len());
        for (i, &(first, at)) in self.runs.iter().enumerate() {
            let end = self.runs.get(i + 1).map_or(usize::MAX, |r| r.1);
            if end <= cut {
                continue;
            }
            let skipped = cut.saturating_sub(at);
            runs.push((first + skipped as u64, at.saturating_sub(cut)));
        }
        self.runs = runs;
    }
}

/// `audit-integrity`: the events follow one another with no sequence number missing, every
/// checkpoint verified and extends the one before, and every event was covered by a signed
/// checkpoint within the limit. One item per checkpoint.
#[derive(Debug)]
pub(crate) struct AuditIntegrity {
    gap: i64,
    last_seq: Option<u64>,
    /// The period's events.
    seen: Times,
}

impl AuditIntegrity {
    pub(crate) fn new(params: Parameters) -> Self {
        AuditIntegrity {
            gap: params.checkpoint_gap,
            last_seq: None,
            seen: Times::default(),
        }
    }
}

impl Check for AuditIntegrity {
    fn wants(&self, _action: &str) -> bool {
        true
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        // Only the period's own events are judged; earlier ones are context for other tests.
        if !tally.in_period(e.time) {
            return;
        }
        if let Some(last) = self.last_seq
            && e.seq != last + 1
        {
            tally.item(exception(
                format!("events {}–{}", last + 1, e.seq.saturating_sub(1)),
                e.time,
                vec![last, e.seq],
                "events are missing from the log",
            ));
        }
        self.last_seq = Some(e.seq);
        self.seen.push(e.seq, e.time);
    }

    fn start_at(&mut self, from: i64) {
        self.seen.drop_before(from);
    }

    fn finish(&self, end: &End<'_>, tally: &mut Tally) {
        // Each event is covered by the first checkpoint at or past it.
        let mut after = 0;
        for c in &end.observations.checkpoints {
            let oldest = self.seen.first_in(after, c.size);
            after = after.max(c.size);
            let subject = format!("checkpoint:{}", c.size);
            let events = oldest.map(|(_, seq)| seq).into_iter().collect();
            if !c.consistent {
                tally.item(exception(
                    subject,
                    oldest.map_or(c.time, |(time, _)| time),
                    events,
                    "its signature does not verify, or it does not extend the checkpoint before",
                ));
                continue;
            }
            let Some((oldest, _)) = oldest else {
                continue;
            };
            let waited = c.time - oldest;
            let mut item = if waited > self.gap {
                exception(
                    subject,
                    oldest,
                    events,
                    format!(
                        "signed {} after the oldest event it covers (limit {})",
                        human(waited),
                        human(self.gap)
                    ),
                )
            } else {
                ok(subject, oldest, events)
            };
            item.measure = Some(waited.max(0));
            tally.item(item);
        }
        if let Some((time, seq)) = self.seen.first_in(after, u64::MAX) {
            if time + self.gap < end.time {
                tally.item(exception(
                    format!("events {seq}–{}", end.last_seq),
                    time,
                    vec![seq],
                    format!(
                        "not covered by any signed checkpoint {} later",
                        human(end.time - time)
                    ),
                ));
            } else {
                tally.pending();
            }
        }
    }
}
