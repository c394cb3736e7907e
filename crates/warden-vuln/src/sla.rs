//! SLA clocks: how long a finding of each severity may stay open, as exact durations from a
//! timestamp. The defaults are the practices': Critical 24 hours, High 7 days, Medium 30
//! days, Low 90 days, Informational none.

use std::collections::BTreeMap;
use std::time::Duration;

use warden_model::Timestamp;

use crate::Severity;

/// Remediation limits per severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaPolicy {
    limits: BTreeMap<Severity, Duration>,
}

const HOUR: u64 = 3600;

impl Default for SlaPolicy {
    fn default() -> Self {
        let limits = [
            (Severity::Critical, 24 * HOUR),
            (Severity::High, 7 * 24 * HOUR),
            (Severity::Medium, 30 * 24 * HOUR),
            (Severity::Low, 90 * 24 * HOUR),
        ]
        .into_iter()
        .map(|(s, secs)| (s, Duration::from_secs(secs)))
        .collect();
        SlaPolicy { limits }
    }
}

impl SlaPolicy {
    /// A policy with these limits; a severity not listed has no deadline.
    pub fn new(limits: impl IntoIterator<Item = (Severity, Duration)>) -> SlaPolicy {
        SlaPolicy {
            limits: limits.into_iter().collect(),
        }
    }

    /// The limit for `severity`, if it has one.
    pub fn limit(&self, severity: Severity) -> Option<Duration> {
        self.limits.get(&severity).copied()
    }

    /// When a finding of `severity` whose clock started at `start` is due; `None` when the
    /// severity has no deadline, or the finding is unrated (it is in triage).
    pub fn due_at(&self, start: Timestamp, severity: Option<Severity>) -> Option<Timestamp> {
        Some(start.plus(self.limit(severity?)?))
    }

    /// How much of its time a finding has used at `now`, as a fraction (1.0 is due, above is
    /// overdue); `None` without a deadline. For the 50 % and 100 % alerts.
    pub fn used(
        &self,
        start: Timestamp,
        severity: Option<Severity>,
        now: Timestamp,
    ) -> Option<f64> {
        let limit = self.limit(severity?)?;
        let limit_ms = limit.as_millis() as f64;
        if limit_ms <= 0.0 {
            return Some(f64::INFINITY);
        }
        Some((now.as_millis() - start.as_millis()) as f64 / limit_ms)
    }
}
