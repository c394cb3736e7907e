//! Figures the benchmarks print.

use std::time::Duration;

/// The `p` quantile (0 to 1) of `sorted` by nearest rank; zero when there are no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let Some(last) = sorted.len().checked_sub(1) else {
        return Duration::ZERO;
    };
    let rank = rank(last, p);
    sorted.get(rank.min(last)).copied().unwrap_or_default()
}

/// The nearest rank of the `p` quantile among `last + 1` samples.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "a rank within a sample counted in millions, p clamped to 0..=1"
)]
fn rank(last: usize, p: f64) -> usize {
    (last as f64 * p.clamp(0.0, 1.0)).round() as usize
}

/// A duration in milliseconds, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&samples, 2.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
