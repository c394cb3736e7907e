//! Severities, highest first.

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Remediate within 24 hours.
    Critical,
    /// Within a week.
    High,
    /// Within a month.
    Medium,
    /// Within three months.
    Low,
    /// As necessary.
    Informational,
}

impl Severity {
    /// Every severity, highest first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
    ];

    /// Its name, lowercase.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Informational => "informational",
        }
    }

    /// Its rank, 0 (critical) to 4 (informational), as the store keeps it.
    pub fn rank(self) -> i64 {
        match self {
            Severity::Critical => 0,
            Severity::High => 1,
            Severity::Medium => 2,
            Severity::Low => 3,
            Severity::Informational => 4,
        }
    }

    /// The severity of a rank.
    pub fn from_rank(rank: i64) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.rank() == rank)
    }

    /// A severity by its name, as people type it (`critical`, `High`).
    pub fn from_name(name: &str) -> Result<Severity, SeverityError> {
        Severity::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                SeverityError(name.chars().take(40).flat_map(char::escape_debug).collect())
            })
    }

    /// A scanner's word for a severity, in any case; `None` for what is no rating at all
    /// (`unknown`, `unrated`, empty), which goes to triage rather than being guessed.
    pub fn from_scanner(word: &str) -> Option<Severity> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" => Severity::Low,
            "info" | "informational" | "negligible" | "none" | "note" => Severity::Informational,
            _ => return None,
        })
    }

    /// The CVSS v3 qualitative rating of a base score.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s >= 0.1 => Severity::Low,
            _ => Severity::Informational,
        }
    }
}

/// An unknown severity name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity `{0}`: expected critical, high, medium, low or informational")]
pub struct SeverityError(String);

impl std::str::FromStr for Severity {
    type Err = SeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::from_name(s)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
