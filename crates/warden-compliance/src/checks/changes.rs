//! Changes and their deadlines: policy versions applied with tests, findings within SLA.

use std::collections::BTreeMap;

use warden_audit::AuditEvent;

use super::{Check, End};
use crate::event::{number, succeeded, target, text, time};
use crate::report::{Item, Tally, exception, ok};

/// `policy-change`: every policy version went through apply, which refuses a set whose tests
/// fail, with at least one test; and the versions follow one another with none missing.
#[derive(Debug, Default)]
pub(crate) struct PolicyChange {
    last: Option<i64>,
}

impl Check for PolicyChange {
    fn wants(&self, action: &str) -> bool {
        action == "policy.apply"
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) || e.action != "policy.apply" {
            return;
        }
        let Some(version) = number(e, "version") else {
            return;
        };
        let subject = format!("policy:v{version}");
        let tests = number(e, "tests").unwrap_or(0);
        let missing = self.last.filter(|last| version != last + 1);
        self.last = Some(version);
        tally.item(if let Some(last) = missing {
            exception(
                subject,
                e.time,
                vec![e.seq],
                format!("follows v{last}: the versions between are missing from the log"),
            )
        } else if tests == 0 {
            exception(subject, e.time, vec![e.seq], "applied with no policy tests")
        } else {
            ok(subject, e.time, vec![e.seq])
        });
    }

    fn finish(&self, _end: &End<'_>, _tally: &mut Tally) {}
}

/// A finding's SLA as the log saw it.
#[derive(Debug, Default)]
struct Clock {
    first: Option<(i64, u64)>,
    breach: Option<Item>,
}

/// `vuln-sla`: no finding passed its due date without a fix or an acceptance. The population
/// is every finding whose clock the log shows running (half its time gone, a breach, a
/// re-rating with a due date, its clock started by a fix being published) or judged
/// (accepted, false positive); a finding fixed before half its time leaves no clock event and
/// is not counted. A finding waiting for a fix runs no clock, so it cannot breach: its
/// clock's start is `vuln.fix.available`.
#[derive(Debug, Default)]
pub(crate) struct VulnSla {
    findings: BTreeMap<String, Clock>,
}

impl Check for VulnSla {
    fn wants(&self, action: &str) -> bool {
        action.starts_with("vuln.")
    }

    fn see(&mut self, e: &AuditEvent, _tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        let counted = matches!(
            e.action.as_str(),
            "vuln.sla.half"
                | "vuln.sla.breach"
                | "vuln.accept"
                | "vuln.false_positive"
                | "vuln.fix.available"
        ) || (e.action == "vuln.rate" && time(e, "due_at").is_some());
        if !counted {
            return;
        }
        let Some(finding) = target(e, "finding:") else {
            return;
        };
        let clock = self.findings.entry(finding.to_owned()).or_default();
        clock.first.get_or_insert((e.time, e.seq));
        if e.action == "vuln.sla.breach" && clock.breach.is_none() {
            let severity = text(e, "severity").unwrap_or("unrated");
            clock.breach = Some(exception(
                format!("finding:{finding}"),
                e.time,
                vec![e.seq],
                format!(
                    "{severity} `{}` on `{}` passed its due date {} without a fix or an acceptance",
                    text(e, "advisory").unwrap_or("?"),
                    text(e, "asset").unwrap_or("?"),
                    text(e, "due_at").unwrap_or("?"),
                ),
            ));
        }
    }

    fn finish(&self, _end: &End<'_>, tally: &mut Tally) {
        for (finding, clock) in &self.findings {
            match (&clock.breach, clock.first) {
                (Some(item), _) => tally.item(item.clone()),
                (None, Some((time, seq))) => {
                    tally.item(ok(format!("finding:{finding}"), time, vec![seq]));
                }
                (None, None) => {}
            }
        }
    }
}

/// A break-glass use as the log saw it.
#[derive(Debug)]
struct Use {
    time: i64,
    seqs: Vec<u64>,
    host: String,
    login: String,
    recorded: bool,
    closed: bool,
}

/// `emergency-access` (HIPAA 164.312(a)(2)(ii)): a break-glass credential existed (the
/// procedure is in place), and every use of one was reported with its recording and had its
/// after-action review closed by the period's end. A use without a recording, or whose review
/// is still open, is an exception.
#[derive(Debug, Default)]
pub(crate) struct EmergencyAccess {
    uses: BTreeMap<String, Use>,
}

impl Check for EmergencyAccess {
    fn wants(&self, action: &str) -> bool {
        action.starts_with("break_glass.")
    }

    fn see(&mut self, e: &AuditEvent, tally: &mut Tally) {
        if !succeeded(e) {
            return;
        }
        match e.action.as_str() {
            "break_glass.create" => {
                tally.item(ok(e.target.clone(), e.time, vec![e.seq]));
            }
            "break_glass.use" => {
                let Some(id) = text(e, "use") else { return };
                self.uses.insert(
                    id.to_owned(),
                    Use {
                        time: e.time,
                        seqs: vec![e.seq],
                        host: text(e, "host").unwrap_or("?").to_owned(),
                        login: text(e, "login").unwrap_or("?").to_owned(),
                        recorded: text(e, "recording_sha256").is_some(),
                        closed: false,
                    },
                );
            }
            "break_glass.review.close" => {
                if let Some(id) = target(e, "break-glass-use:")
                    && let Some(u) = self.uses.get_mut(id)
                {
                    u.closed = true;
                    u.seqs.push(e.seq);
                }
            }
            _ => {}
        }
    }

    fn finish(&self, _end: &End<'_>, tally: &mut Tally) {
        for (id, u) in &self.uses {
            let subject = format!("break-glass-use:{id}");
            let what = format!("emergency access to `{}` as `{}`", u.host, u.login);
            tally.item(match (u.recorded, u.closed) {
                (true, true) => ok(subject, u.time, u.seqs.clone()),
                (false, _) => exception(
                    subject,
                    u.time,
                    u.seqs.clone(),
                    format!("{what} has no recording"),
                ),
                (true, false) => exception(
                    subject,
                    u.time,
                    u.seqs.clone(),
                    format!("{what} has no closed after-action review"),
                ),
            });
        }
    }
}
