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

/// The SLA policies of every asset tier, and whether re-rating restarts a finding's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaTiers {
    /// Each tier's policy; `default` is always there.
    tiers: BTreeMap<String, SlaPolicy>,
    /// Whether a re-rating restarts the clock (from the re-rating) or keeps the first one.
    pub restart_clock_on_rerate: bool,
}

/// The tier every asset starts in.
pub const DEFAULT_TIER: &str = "default";

impl Default for SlaTiers {
    fn default() -> Self {
        SlaTiers {
            tiers: BTreeMap::from([(DEFAULT_TIER.to_owned(), SlaPolicy::default())]),
            restart_clock_on_rerate: false,
        }
    }
}

impl SlaTiers {
    /// These tiers (a missing `default` gets the practices' defaults).
    pub fn new(
        tiers: impl IntoIterator<Item = (String, SlaPolicy)>,
        restart_clock_on_rerate: bool,
    ) -> SlaTiers {
        let mut tiers: BTreeMap<String, SlaPolicy> = tiers.into_iter().collect();
        tiers.entry(DEFAULT_TIER.to_owned()).or_default();
        SlaTiers {
            tiers,
            restart_clock_on_rerate,
        }
    }

    /// The policy of `tier`; the default tier's for a tier no longer configured.
    pub fn policy(&self, tier: &str) -> &SlaPolicy {
        self.tiers
            .get(tier)
            .or_else(|| self.tiers.get(DEFAULT_TIER))
            .unwrap_or(&DEFAULT_POLICY)
    }

    /// Whether `tier` is configured.
    pub fn has(&self, tier: &str) -> bool {
        self.tiers.contains_key(tier)
    }

    /// The tiers' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tiers.keys().map(String::as_str)
    }

    /// The whole configuration as JSON, for the record (`{"tiers": {"default": {"critical":
    /// 86400, …}}, "restart_clock_on_rerate": false}`, limits in seconds, `null` for none).
    pub fn describe(&self) -> serde_json::Value {
        let tiers: serde_json::Map<String, serde_json::Value> = self
            .tiers
            .iter()
            .map(|(name, policy)| {
                let limits: serde_json::Map<String, serde_json::Value> = Severity::ALL
                    .iter()
                    .map(|s| {
                        (
                            s.as_str().to_owned(),
                            policy
                                .limit(*s)
                                .map_or(serde_json::Value::Null, |d| d.as_secs().into()),
                        )
                    })
                    .collect();
                (name.clone(), limits.into())
            })
            .collect();
        serde_json::json!({
            "tiers": tiers,
            "restart_clock_on_rerate": self.restart_clock_on_rerate,
        })
    }
}

static DEFAULT_POLICY: std::sync::LazyLock<SlaPolicy> =
    std::sync::LazyLock::new(SlaPolicy::default);
