//! Temporary grants: approved by someone else, ended on time.

use std::collections::BTreeMap;

use warden_audit::AuditEvent;

use super::{Check, End};
use crate::event::{list, person, succeeded, target, text, time};
use crate::report::Parameters;
use crate::report::{Tally, exception, human, ok};

/// Why an approval does not separate duties, if it does not.
fn approver_fault(e: &AuditEvent, requester: Option<&str>) -> Option<String> {
    match person(e) {
        Some(p) if Some(p) == requester => Some(format!("approved by the requester, `{p}`")),
        Some(_) => None,
        None => Some(format!(
            "approved by `{}`, not by a named person",
            e.actor_label
        )),
    }
}

/// `grant-approval`: every approval of a request that made a grant came from a named person
/// other than the requester.
#[derive(Debug, Default)]
pub(crate) struct GrantApproval {
    /// Request → the approvals so far (sequence numbers) and the first fault among them.
    approvals: BTreeMap<String, (Vec<u64>, Option<String>)>,
}

impl Check for GrantApproval {
    fn wants(&self, action: &str) -> bool {
        action == "access.approve"
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) || e.action != "access.approve" {
            return;
        }
        let Some(request) = target(e, "request:") else {
            return;
        };
        let requester = text(e, "requester");
        let (seqs, fault) = self.approvals.entry(request.to_owned()).or_default();
        seqs.push(e.seq);
        if fault.is_none() {
            *fault = approver_fault(e, requester);
        }
        let Some(grant) = text(e, "grant") else {
            return;
        };
        let Some((seqs, fault)) = self.approvals.remove(request) else {
            return;
        };
        let subject = format!("grant:{grant}");
        tally.item(match fault {
            Some(why) => exception(subject, e.time, seqs, why),
            None => ok(subject, e.time, seqs),
        });
    }

    fn finish(&self, _end: &End<'_>, _tally: &mut Tally) {}
}

/// A grant in force.
#[derive(Debug)]
struct Grant {
    user: String,
    group: String,
    expires_at: i64,
    seq: u64,
}

/// `grant-expiry`: every grant ended by its expiry (within the grace), or earlier by a
/// disable or a review.
#[derive(Debug)]
pub(crate) struct GrantExpiry {
    grace: i64,
    grants: BTreeMap<String, Grant>,
}

impl GrantExpiry {
    pub(crate) fn new(params: Parameters) -> Self {
        GrantExpiry {
            grace: params.grant_grace,
            grants: BTreeMap::new(),
        }
    }

    fn end_where(&mut self, tally: &mut Tally, e: &AuditEvent, ended: impl Fn(&Grant) -> bool) {
        let ids: Vec<String> = self
            .grants
            .iter()
            .filter(|(_, g)| ended(g))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(g) = self.grants.remove(&id) {
                tally.item(ok(
                    format!("grant:{id}"),
                    e.time.min(g.expires_at),
                    vec![g.seq, e.seq],
                ));
            }
        }
    }
}

impl Check for GrantExpiry {
    fn wants(&self, action: &str) -> bool {
        matches!(
            action,
            "access.approve" | "grant.expire" | "user.disable" | "user.delete" | "review.revoke"
        )
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "access.approve" => {
                let (Some(grant), Some(user), Some(group), Some(expires_at)) = (
                    text(e, "grant"),
                    text(e, "requester"),
                    text(e, "group"),
                    time(e, "expires_at"),
                ) else {
                    return;
                };
                self.grants.insert(
                    grant.to_owned(),
                    Grant {
                        user: user.to_owned(),
                        group: group.to_owned(),
                        expires_at,
                        seq: e.seq,
                    },
                );
            }
            "grant.expire" => {
                let Some(id) = text(e, "grant") else {
                    return;
                };
                let Some(g) = self.grants.remove(id) else {
                    return;
                };
                let late = e.time - g.expires_at;
                let subject = format!("grant:{id}");
                let mut item = if late > self.grace {
                    exception(
                        subject,
                        g.expires_at,
                        vec![g.seq, e.seq],
                        format!(
                            "`{}` in `{}` ended {} late (grace {})",
                            g.user,
                            g.group,
                            human(late),
                            human(self.grace)
                        ),
                    )
                } else {
                    ok(subject, g.expires_at, vec![g.seq, e.seq])
                };
                item.measure = Some(late.max(0));
                tally.item(item);
            }
            "user.disable" | "user.delete" => {
                if let Some(user) = target(e, "user:") {
                    let user = user.to_owned();
                    self.end_where(tally, e, |g| g.user == user);
                }
            }
            "review.revoke" => {
                let revoked: Vec<String> = list(e, "revoked")
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_owned))
                    .collect();
                self.end_where(tally, e, |g| {
                    revoked.contains(&format!("user:{}:{}", g.user, g.group))
                        || revoked.contains(&format!("{}:{}", g.user, g.group))
                });
            }
            _ => {}
        }
    }

    fn finish(&self, end: &End<'_>, tally: &mut Tally) {
        for (id, g) in &self.grants {
            if g.expires_at + self.grace < end.time {
                tally.item(exception(
                    format!("grant:{id}"),
                    g.expires_at,
                    vec![g.seq],
                    format!(
                        "`{}` in `{}` still in force {} after it should have ended",
                        g.user,
                        g.group,
                        human(end.time - g.expires_at)
                    ),
                ));
            } else {
                tally.pending();
            }
        }
    }
}
