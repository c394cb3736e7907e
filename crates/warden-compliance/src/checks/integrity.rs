//! The log itself: no event missing, every event under a consistent signed checkpoint soon
//! enough.

use warden_audit::AuditEvent;

use super::{Check, End};
use crate::report::{CheckpointSeen, Parameters};
use crate::report::{Tally, exception, human, ok};

/// A checkpoint and the oldest event it was the first to cover.
#[derive(Debug)]
struct Covering {
    checkpoint: CheckpointSeen,
    oldest: Option<(i64, u64)>,
}

/// `audit-integrity`: the events follow one another with no sequence number missing, every
/// checkpoint verified and extends the one before, and every event was covered by a signed
/// checkpoint within the limit. One item per checkpoint.
#[derive(Debug)]
pub(crate) struct AuditIntegrity {
    gap: i64,
    checkpoints: Vec<Covering>,
    /// The next checkpoint that may cover an event.
    next: usize,
    last_seq: Option<u64>,
    /// The oldest event not covered by any checkpoint.
    uncovered: Option<(i64, u64)>,
}

impl AuditIntegrity {
    pub(crate) fn new(params: Parameters, observations: &crate::report::Observations) -> Self {
        AuditIntegrity {
            gap: params.checkpoint_gap,
            checkpoints: observations
                .checkpoints
                .iter()
                .map(|c| Covering {
                    checkpoint: c.clone(),
                    oldest: None,
                })
                .collect(),
            next: 0,
            last_seq: None,
            uncovered: None,
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
        while self
            .checkpoints
            .get(self.next)
            .is_some_and(|c| c.checkpoint.size < e.seq)
        {
            self.next += 1;
        }
        match self.checkpoints.get_mut(self.next) {
            Some(c) => {
                c.oldest.get_or_insert((e.time, e.seq));
            }
            None => {
                self.uncovered.get_or_insert((e.time, e.seq));
            }
        }
    }

    fn finish(&mut self, end: &End<'_>, tally: &mut Tally) {
        for c in &self.checkpoints {
            let subject = format!("checkpoint:{}", c.checkpoint.size);
            let events = c.oldest.map(|(_, seq)| seq).into_iter().collect();
            if !c.checkpoint.consistent {
                tally.item(exception(
                    subject,
                    c.oldest.map_or(c.checkpoint.time, |(time, _)| time),
                    events,
                    "its signature does not verify, or it does not extend the checkpoint before",
                ));
                continue;
            }
            let Some((oldest, _)) = c.oldest else {
                continue;
            };
            let waited = c.checkpoint.time - oldest;
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
        if let Some((time, seq)) = self.uncovered {
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
