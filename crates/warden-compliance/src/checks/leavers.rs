//! Leavers: from the disable to nothing left open, and nothing used after.

use std::collections::{BTreeMap, BTreeSet};

use warden_audit::AuditEvent;

use super::{Check, End};
use crate::event::{person, succeeded, target, text};
use crate::report::Parameters;
use crate::report::{Item, Tally, human};

/// A person disabled, and what of theirs was still open.
#[derive(Debug)]
struct Leaver {
    at: i64,
    seqs: Vec<u64>,
    open: BTreeSet<String>,
    last_closed: Option<i64>,
    used_after: Option<(String, i64)>,
}

/// `leaver-deprovision`: for each person disabled (by SCIM, by an administrator or by the
/// operator), the time until the last of their SSH sessions open at that moment closed (their
/// tokens, browser sessions, grants and certificates end in the disabling transaction), within
/// the limit; and no success of theirs after it until they were enabled again.
#[derive(Debug)]
pub(crate) struct LeaverDeprovision {
    limit: i64,
    /// Live SSH sessions: session → person.
    live: BTreeMap<String, String>,
    leavers: BTreeMap<String, Leaver>,
}

impl LeaverDeprovision {
    pub(crate) fn new(params: Parameters) -> Self {
        LeaverDeprovision {
            limit: params.deprovision_within,
            live: BTreeMap::new(),
            leavers: BTreeMap::new(),
        }
    }

    /// The leaver's item as of `now`: `None` while it cannot be decided yet.
    fn decide(&self, user: &str, l: &Leaver, now: i64) -> Option<Item> {
        let mut item = Item {
            subject: format!("user:{user}"),
            time: l.at,
            events: l.seqs.clone(),
            measure: None,
            exception: None,
        };
        if let Some((action, time)) = &l.used_after {
            item.exception = Some(format!(
                "used after being disabled: `{action}` {} later",
                human(time - l.at)
            ));
            return Some(item);
        }
        if !l.open.is_empty() {
            if l.at + self.limit >= now {
                return None;
            }
            item.exception = Some(format!(
                "{} SSH session(s) still open {} after the disable (limit {})",
                l.open.len(),
                human(now - l.at),
                human(self.limit)
            ));
            return Some(item);
        }
        let took = l.last_closed.map_or(0, |t| (t - l.at).max(0));
        item.measure = Some(took);
        if took > self.limit {
            item.exception = Some(format!(
                "the last SSH session closed {} after the disable (limit {})",
                human(took),
                human(self.limit)
            ));
        }
        Some(item)
    }
}

impl Check for LeaverDeprovision {
    fn wants(&self, _action: &str) -> bool {
        // Any success of a leaver's is a use after the disable.
        true
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "ssh.session.start" => {
                if let (Some(session), Some(user)) = (text(e, "session"), person(e)) {
                    self.live.insert(session.to_owned(), user.to_owned());
                }
            }
            "ssh.session.end" => {
                let Some(session) = text(e, "session") else {
                    return;
                };
                let Some(user) = self.live.remove(session) else {
                    return;
                };
                if let Some(l) = self.leavers.get_mut(&user)
                    && l.open.remove(session)
                {
                    l.last_closed = Some(e.time);
                    l.seqs.push(e.seq);
                }
            }
            "user.disable" | "user.delete" => {
                let Some(user) = target(e, "user:") else {
                    return;
                };
                // A SCIM delete of someone already disabled changes nothing.
                if self.leavers.contains_key(user) {
                    return;
                }
                let open = self
                    .live
                    .iter()
                    .filter(|(_, u)| *u == user)
                    .map(|(s, _)| s.clone())
                    .collect();
                self.leavers.insert(
                    user.to_owned(),
                    Leaver {
                        at: e.time,
                        seqs: vec![e.seq],
                        open,
                        last_closed: None,
                        used_after: None,
                    },
                );
            }
            "user.enable" => {
                let Some(user) = target(e, "user:") else {
                    return;
                };
                if let Some(l) = self.leavers.remove(user)
                    && let Some(item) = self.decide(user, &l, e.time)
                {
                    tally.item(item);
                }
            }
            action => {
                let Some(user) = person(e) else {
                    return;
                };
                if let Some(l) = self.leavers.get_mut(user)
                    && l.used_after.is_none()
                {
                    l.used_after = Some((action.to_owned(), e.time));
                    l.seqs.push(e.seq);
                }
            }
        }
    }

    fn finish(&self, end: &End<'_>, tally: &mut Tally) {
        for (user, l) in &self.leavers {
            match self.decide(user, l, end.time) {
                Some(item) => tally.item(item),
                None => tally.pending(),
            }
        }
    }
}
