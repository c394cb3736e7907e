//! The period a report covers: `[from, to)`, checked against now and the log's beginning.

use serde::{Deserialize, Serialize};
use warden_model::Timestamp;

/// A checked period, `from` inclusive, `to` exclusive, in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    from: i64,
    to: i64,
}

/// A period that cannot be reported on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// `from` is not before `to`.
    #[error("the period is reversed or empty: `--from` {from} is not before `--to` {to}")]
    Reversed {
        /// The start given.
        from: Timestamp,
        /// The end given.
        to: Timestamp,
    },
    /// `to` is after now: a future period has no evidence yet.
    #[error("the period ends in the future: `--to` {to} is after now ({now})")]
    Future {
        /// The end given.
        to: Timestamp,
        /// The server's now.
        now: Timestamp,
    },
    /// `from` is before the first event the log holds.
    #[error(
        "the period starts before the audit log began ({began}): use `--from` {began} or later"
    )]
    BeforeLog {
        /// The start given.
        from: Timestamp,
        /// The first event's time.
        began: Timestamp,
    },
}

impl Period {
    /// Checks a period: `from` before `to`, `to` not after `now`, and `from` not before the
    /// log's first event (`began`; `None` for an empty log, which refuses every period).
    pub fn new(
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        began: Option<Timestamp>,
    ) -> Result<Period, PeriodError> {
        if from.as_millis() >= to.as_millis() {
            return Err(PeriodError::Reversed { from, to });
        }
        if to.as_millis() > now.as_millis() {
            return Err(PeriodError::Future { to, now });
        }
        let began = began.unwrap_or(now);
        // The log's times are the requests' arrival, to the millisecond; a period given to
        // the second may start within the first event's second.
        if from.as_millis() < began.as_millis() - began.as_millis().rem_euclid(1000) {
            return Err(PeriodError::BeforeLog { from, began });
        }
        Ok(Period {
            from: from.as_millis(),
            to: to.as_millis(),
        })
    }

    /// A period as recorded in a bundle, not checked against a clock.
    pub fn recorded(from: i64, to: i64) -> Option<Period> {
        (from < to).then_some(Period { from, to })
    }

    /// A period from `from` with no end yet: for an evaluator kept up to date.
    pub fn open(from: i64) -> Period {
        Period { from, to: i64::MAX }
    }

    /// The same period from a later start.
    pub(crate) fn starting(self, from: i64) -> Period {
        Period {
            from: from.max(self.from),
            to: self.to,
        }
    }

    /// The same period to another end.
    pub(crate) fn ending(self, to: i64) -> Period {
        Period {
            from: self.from,
            to,
        }
    }

    /// The start, inclusive.
    pub fn from(self) -> Timestamp {
        Timestamp::from_millis(self.from)
    }

    /// The end, exclusive.
    pub fn to(self) -> Timestamp {
        Timestamp::from_millis(self.to)
    }

    /// Whether a time falls within the period.
    pub fn holds(self, time: i64) -> bool {
        (self.from..self.to).contains(&time)
    }

    /// The end in milliseconds.
    pub(crate) fn end(self) -> i64 {
        self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn bad_periods_are_refused_in_one_line() {
        let now = t(1_800_000_000);
        let began = Some(t(1_700_000_000));
        assert_eq!(
            Period::new(t(1_750_000_100), t(1_750_000_000), now, began)
                .unwrap_err()
                .to_string(),
            "the period is reversed or empty: `--from` 2025-06-15T15:08:20Z is not before `--to` 2025-06-15T15:06:40Z"
        );
        assert_eq!(
            Period::new(t(1_750_000_000), t(1_900_000_000), now, began)
                .unwrap_err()
                .to_string(),
            "the period ends in the future: `--to` 2030-03-17T17:46:40Z is after now (2027-01-15T08:00:00Z)"
        );
        assert_eq!(
            Period::new(t(1_600_000_000), t(1_750_000_000), now, began)
                .unwrap_err()
                .to_string(),
            "the period starts before the audit log began (2023-11-14T22:13:20Z): use `--from` 2023-11-14T22:13:20Z or later"
        );
        let p = Period::new(t(1_700_000_000), now, now, began).unwrap();
        assert!(p.holds(1_700_000_000_000) && !p.holds(1_800_000_000_000));
    }
}
