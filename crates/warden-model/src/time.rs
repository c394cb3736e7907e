//! Instants and lifetimes. The caller supplies "now"; nothing here reads the clock.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, as stored in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Converts a wall-clock reading taken by the caller. Times before 1970 clamp to the epoch.
    pub fn from_system(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(ms)
    }

    /// This instant plus `d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// RFC 3339 in UTC, to the millisecond: `2026-11-29T03:39:53.123Z`.
    pub fn rfc3339_millis(self) -> String {
        humantime::format_rfc3339_millis(self.to_system()).to_string()
    }

    fn to_system(self) -> SystemTime {
        let ms = u64::try_from(self.0).unwrap_or(0);
        UNIX_EPOCH + Duration::from_millis(ms)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, to the second: `2026-11-29T03:39:53Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.to_system()))
    }
}

/// The lifetime of a credential: at least a minute, at most 366 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ttl(Duration);

/// A lifetime that could not be parsed or is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    /// Not a duration like `90m`, `12h` or `30d`.
    #[error("invalid duration `{0}`: use a number and a unit, like 90m, 12h or 30d")]
    Syntax(String),
    /// Shorter than a minute.
    #[error("duration `{0}` is too short: the minimum is 1m")]
    TooShort(String),
    /// Longer than 366 days.
    #[error("duration `{0}` is too long: the maximum is 366d")]
    TooLong(String),
}

impl Ttl {
    /// Shortest lifetime accepted.
    pub const MIN: Duration = Duration::from_secs(60);
    /// Longest lifetime accepted.
    pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

    /// The lifetime as a duration.
    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for Ttl {
    type Err = TtlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown = || s.chars().take(40).collect::<String>();
        let d = humantime::parse_duration(s.trim()).map_err(|_| TtlError::Syntax(shown()))?;
        if d < Self::MIN {
            return Err(TtlError::TooShort(shown()));
        }
        if d > Self::MAX {
            return Err(TtlError::TooLong(shown()));
        }
        Ok(Self(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(
            Timestamp::from_millis(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_796_000_000_000).to_string(),
            "2026-11-30T00:53:20Z"
        );
    }

    #[test]
    fn ttl_bounds_and_messages() {
        assert_eq!(
            "1h".parse::<Ttl>().unwrap().as_duration(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            "30d".parse::<Ttl>().unwrap().as_duration(),
            Duration::from_secs(30 * 86400)
        );
        assert_eq!(
            "soon".parse::<Ttl>().unwrap_err().to_string(),
            "invalid duration `soon`: use a number and a unit, like 90m, 12h or 30d"
        );
        assert_eq!(
            "10s".parse::<Ttl>().unwrap_err().to_string(),
            "duration `10s` is too short: the minimum is 1m"
        );
        assert_eq!(
            "400d".parse::<Ttl>().unwrap_err().to_string(),
            "duration `400d` is too long: the maximum is 366d"
        );
    }

    proptest! {
        #[test]
        fn ttl_parse_never_panics(s in "\\PC{0,30}") {
            if let Ok(t) = s.parse::<Ttl>() {
                prop_assert!(t.as_duration() >= Ttl::MIN && t.as_duration() <= Ttl::MAX);
            }
        }
    }
}
