//! The SLA burn-down: how many findings were open, and how many of those overdue, at each of
//! evenly spaced moments. Pure: the store gives each finding's open interval and due date.

/// One finding's life, in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// When it was first seen.
    pub opened: i64,
    /// When it stopped being open (fixed, accepted, called a false positive); `None` while open.
    pub closed: Option<i64>,
    /// When its SLA ran out; `None` without one.
    pub due: Option<i64>,
}

/// The counts at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// The moment, epoch ms.
    pub at: i64,
    /// Findings open then.
    pub open: i64,
    /// Of those, past their due date then.
    pub overdue: i64,
}

/// Counts at `points` moments evenly spaced from `from` to `until` (both included; at least
/// two). A finding is open at `t` when `opened <= t < closed`, overdue when also `due <= t`.
/// Runs in O((spans + points) log spans).
pub fn burndown(spans: &[Span], from: i64, until: i64, points: usize) -> Vec<Point> {
    let points = points.max(2);
    let until = until.max(from);
    let mut opened: Vec<i64> = spans.iter().map(|s| s.opened).collect();
    // A close before the open (clock skew between replicas) counts as at the open.
    let mut closed: Vec<i64> = spans
        .iter()
        .filter_map(|s| s.closed.map(|c| c.max(s.opened)))
        .collect();
    // Overdue from the later of first seen and due, until closed; a finding closed by its
    // due date never is.
    let mut late_starts = Vec::new();
    let mut late_closed = Vec::new();
    for s in spans {
        let Some(due) = s.due else { continue };
        let start = due.max(s.opened);
        match s.closed {
            Some(c) if c <= start => {}
            Some(c) => {
                late_starts.push(start);
                late_closed.push(c);
            }
            None => late_starts.push(start),
        }
    }
    opened.sort_unstable();
    closed.sort_unstable();
    late_starts.sort_unstable();
    late_closed.sort_unstable();
    let at_most = |v: &[i64], t: i64| v.partition_point(|&x| x <= t);
    let span = i128::from(until) - i128::from(from);
    let last = (points - 1) as i128;
    (0..points)
        .map(|i| {
            let offset = span * i as i128 / last;
            let t = i64::try_from(i128::from(from) + offset).unwrap_or(until);
            let count = |a: &[i64], b: &[i64]| {
                i64::try_from(at_most(a, t).saturating_sub(at_most(b, t))).unwrap_or(i64::MAX)
            };
            Point {
                at: t,
                open: count(&opened, &closed),
                overdue: count(&late_starts, &late_closed),
            }
        })
        .collect()
}
