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

    fn finish(&mut self, _end: &End<'_>, _tally: &mut Tally) {}
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

    fn finish(&mut self, _end: &End<'_>, tally: &mut Tally) {
        for (finding, clock) in std::mem::take(&mut self.findings) {
            match (clock.breach, clock.first) {
                (Some(item), _) => tally.item(item),
                (None, Some((time, seq))) => {
                    tally.item(ok(format!("finding:{finding}"), time, vec![seq]));
                }
                (None, None) => {}
            }
        }
    }
}
