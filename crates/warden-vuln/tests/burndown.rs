//! The SLA burn-down: counts at evenly spaced moments, checked by hand and against counting
//! every finding at every moment.
use proptest::prelude::*;
use warden_vuln::burndown::{Point, Span, burndown};

#[test]
fn open_and_overdue_over_time() {
    let spans = [
        // Open from 0, due at 10, fixed at 30: overdue from 10 to 30.
        Span {
            opened: 0,
            closed: Some(30),
            due: Some(10),
        },
        // Open from 20, due at 25, still open.
        Span {
            opened: 20,
            closed: None,
            due: Some(25),
        },
        // Fixed before its due date: never overdue.
        Span {
            opened: 5,
            closed: Some(15),
            due: Some(40),
        },
        // Accepted (closed) at 12, no SLA.
        Span {
            opened: 0,
            closed: Some(12),
            due: None,
        },
    ];
    let points = burndown(&spans, 0, 40, 5);
    assert_eq!(
        points,
        [
            Point {
                at: 0,
                open: 2,
                overdue: 0
            },
            Point {
                at: 10,
                open: 3,
                overdue: 1
            },
            Point {
                at: 20,
                open: 2,
                overdue: 1
            },
            Point {
                at: 30,
                open: 1,
                overdue: 1
            },
            Point {
                at: 40,
                open: 1,
                overdue: 1
            },
        ]
    );
    assert_eq!(burndown(&[], 5, 5, 0).len(), 2, "at least two points");
}

fn span() -> impl Strategy<Value = Span> {
    (
        0i64..1000,
        proptest::option::of(0i64..1200),
        proptest::option::of(0i64..1200),
    )
        .prop_map(|(opened, closed, due)| Span {
            opened,
            closed: closed.map(|c| c.max(opened)),
            due,
        })
}

proptest! {
    #[test]
    fn counts_match_counting_each_finding(
        spans in proptest::collection::vec(span(), 0..60),
        from in 0i64..600,
        len in 0i64..700,
        n in 2usize..40,
    ) {
        for p in burndown(&spans, from, from + len, n) {
            let open: Vec<&Span> = spans
                .iter()
                .filter(|s| s.opened <= p.at && s.closed.is_none_or(|c| c > p.at))
                .collect();
            let overdue = open.iter().filter(|s| s.due.is_some_and(|d| d <= p.at)).count();
            prop_assert_eq!(p.open, i64::try_from(open.len()).unwrap());
            prop_assert_eq!(p.overdue, i64::try_from(overdue).unwrap(), "{:?}", p);
        }
    }
}
