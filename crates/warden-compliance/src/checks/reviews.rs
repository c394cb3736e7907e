//! Access reviews: every group reviewed within the interval, every revocation verified.

use std::collections::{BTreeMap, BTreeSet};

use warden_audit::AuditEvent;

use super::{Check, End};
use crate::event::{list, number, succeeded, target, text, time};
use crate::report::Parameters;
use crate::report::{Tally, exception, human, ok};

/// A campaign until it completes.
#[derive(Debug)]
struct Campaign {
    /// The groups it covers: the named ones, or every group at its creation.
    groups: Vec<String>,
    items: u64,
    decided: BTreeSet<u64>,
    seq: u64,
    /// When its decisions were due.
    due_at: Option<i64>,
    completed: bool,
}

/// Revoked items waiting for their verification.
#[derive(Debug)]
struct Revoked {
    time: i64,
    seq: u64,
    subject: String,
}

/// `access-review`: every group had a completed review (all its campaign's items decided, or
/// the campaign closed) within the interval of its creation or of its last review; and every
/// revocation a review made was verified gone.
#[derive(Debug)]
pub(crate) struct AccessReview {
    every: i64,
    /// Group → since when it is owed a review, and the event that started the clock.
    groups: BTreeMap<String, (i64, u64)>,
    campaigns: BTreeMap<String, Campaign>,
    /// (campaign, item) → the revocation.
    unverified: BTreeMap<(String, u64), Revoked>,
}

/// The grace a revocation has to be verified: the verification runs right after it.
const VERIFY_GRACE: i64 = 60 * 60 * 1000;

impl AccessReview {
    pub(crate) fn new(params: Parameters) -> Self {
        AccessReview {
            every: params.review_every,
            groups: BTreeMap::new(),
            campaigns: BTreeMap::new(),
            unverified: BTreeMap::new(),
        }
    }

    /// A campaign completed at `e`: each group it covers is reviewed, late or on time.
    fn complete(&mut self, id: &str, e: &AuditEvent, tally: &mut Tally) {
        let Some(c) = self.campaigns.get_mut(id) else {
            return;
        };
        if c.completed {
            return;
        }
        c.completed = true;
        let subject = format!("review:{id}");
        let events = vec![c.seq, e.seq];
        tally.item(match c.due_at {
            Some(due) if e.time > due => exception(
                subject,
                e.time,
                events,
                format!("completed {} after its due date", human(e.time - due)),
            ),
            _ => ok(subject, e.time, events),
        });
        for group in &c.groups {
            let Some((since, seq)) = self.groups.get_mut(group) else {
                continue;
            };
            let due = *since + self.every;
            let subject = format!("group:{group}");
            let events = vec![*seq, c.seq, e.seq];
            tally.item(if e.time > due {
                exception(
                    subject,
                    e.time,
                    events,
                    format!(
                        "reviewed {} late: due by the interval of {}",
                        human(e.time - due),
                        human(self.every)
                    ),
                )
            } else {
                ok(subject, e.time, events)
            });
            *since = e.time;
            *seq = e.seq;
        }
    }
}

impl Check for AccessReview {
    fn wants(&self, action: &str) -> bool {
        matches!(action, "group.create" | "group.delete") || action.starts_with("review.")
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        let campaign = target(e, "review:");
        match (e.action.as_str(), campaign) {
            ("group.create", _) => {
                if let Some(group) = target(e, "group:") {
                    self.groups
                        .entry(group.to_owned())
                        .or_insert((e.time, e.seq));
                }
            }
            ("group.delete", _) => {
                if let Some(group) = target(e, "group:")
                    && let Some((since, seq)) = self.groups.remove(group)
                    && since + self.every < e.time
                {
                    tally.item(exception(
                        format!("group:{group}"),
                        since + self.every,
                        vec![seq, e.seq],
                        format!("not reviewed within {}", human(self.every)),
                    ));
                }
            }
            ("review.create", Some(id)) => {
                let scope = text(e, "scope").unwrap_or("");
                let groups = match scope.strip_prefix("groups:") {
                    Some("*") => self.groups.keys().cloned().collect(),
                    Some(names) => names.split(',').map(str::to_owned).collect(),
                    None => Vec::new(),
                };
                let items = number(e, "items")
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0);
                self.campaigns.insert(
                    id.to_owned(),
                    Campaign {
                        groups,
                        items,
                        decided: BTreeSet::new(),
                        seq: e.seq,
                        due_at: time(e, "due_at"),
                        completed: false,
                    },
                );
            }
            ("review.keep" | "review.revoke", Some(id)) => {
                let numbers: Vec<u64> =
                    list(e, "items").iter().filter_map(|n| n.as_u64()).collect();
                if e.action == "review.revoke" {
                    for n in &numbers {
                        self.unverified.insert(
                            (id.to_owned(), *n),
                            Revoked {
                                time: e.time,
                                seq: e.seq,
                                subject: format!("review:{id} item {n}"),
                            },
                        );
                    }
                }
                let done = self.campaigns.get_mut(id).is_some_and(|c| {
                    c.decided.extend(numbers);
                    c.decided.len() as u64 >= c.items
                });
                if done {
                    self.complete(id, e, tally);
                }
            }
            ("review.close", Some(id)) => self.complete(id, e, tally),
            ("review.verify", Some(id)) => {
                for (key, fault) in [("verified", None), ("still_held", Some(()))] {
                    for n in list(e, key).iter().filter_map(|n| n.as_u64()) {
                        let Some(r) = self.unverified.remove(&(id.to_owned(), n)) else {
                            continue;
                        };
                        tally.item(match fault {
                            None => ok(r.subject, r.time, vec![r.seq, e.seq]),
                            Some(()) => exception(
                                r.subject,
                                r.time,
                                vec![r.seq, e.seq],
                                "revoked access was still held when verified",
                            ),
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&self, end: &End<'_>, tally: &mut Tally) {
        for (id, c) in &self.campaigns {
            match c.due_at {
                _ if c.completed => {}
                Some(due) if due < end.time => tally.item(exception(
                    format!("review:{id}"),
                    due,
                    vec![c.seq],
                    format!(
                        "missed its due date: {} of {} item(s) undecided",
                        c.items.saturating_sub(c.decided.len() as u64),
                        c.items
                    ),
                )),
                _ => tally.pending(),
            }
        }
        for (group, (since, seq)) in &self.groups {
            if since + self.every < end.time {
                tally.item(exception(
                    format!("group:{group}"),
                    since + self.every,
                    vec![*seq],
                    format!(
                        "no completed review for {} (interval {})",
                        human(end.time - since),
                        human(self.every)
                    ),
                ));
            } else {
                tally.pending();
            }
        }
        for r in self.unverified.values() {
            if r.time + VERIFY_GRACE < end.time {
                tally.item(exception(
                    r.subject.clone(),
                    r.time,
                    vec![r.seq],
                    "a revocation was never verified",
                ));
            } else {
                tally.pending();
            }
        }
    }
}
