//! The dashboard's kept figures against the live queries, on both backends: findings made by
//! random imports, re-imports that fix, ratings, acceptances that expire, false positives and
//! reopenings over three months, then the kept figures for all assets and for each must equal
//! `stats`, `assets` and the burn-down of `spans` at several moments. Also the change marker,
//! the recompute rule and the bounded count.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test"
)]

#[path = "../../warden-store/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{ctx, stores};
use warden_model::Timestamp;
use warden_store::Store;
use warden_vuln::{ImportedFinding, Severity, SlaTiers};
use warden_vuln_store::figures::{self, PERIOD, POINTS};
use warden_vuln_store::{FindingFilter, FindingSort, FindingState, NewImport, VulnStore};

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;
const ASSETS: [&str; 3] = ["api", "web", "db"];

/// A small deterministic generator (xorshift), so a failure can be replayed from its seed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn finding(n: u64, severity: Option<Severity>) -> ImportedFinding {
    ImportedFinding {
        advisory: format!("CVE-2026-{n:04}"),
        aliases: Vec::new(),
        package: Some(format!("pkg:npm/mod{n}@1.0.0")),
        location: None,
        fingerprint: None,
        fixed_in: Some("2.0.0".to_owned()),
        no_fix: false,
        title: format!("mod{n}: a flaw"),
        disclosed: severity,
        cvss: None,
    }
}

/// A Trivy report of `findings` on `asset`.
fn trivy_scan(asset: &str, findings: Vec<ImportedFinding>) -> NewImport {
    NewImport {
        asset: asset.to_owned(),
        scanner: "trivy".to_owned(),
        format: "trivy".to_owned(),
        file_name: "scan.json".to_owned(),
        sha256: "00".repeat(32),
        findings,
    }
}

async fn all_findings(store: &Store, now: i64) -> Vec<warden_vuln_store::Finding> {
    store
        .vulns()
        .findings(&FindingFilter {
            asset: None,
            severity: None,
            states: FindingState::ALL.to_vec(),
            overdue: false,
            now: Timestamp::from_millis(now),
            text: None,
            sort: FindingSort::Number,
            after: None,
            limit: 1000,
            count_up_to: None,
        })
        .await
        .unwrap()
        .findings
}

/// Three months of a random team's work on three assets.
async fn history(store: &Store, seed: u64) {
    let sla = SlaTiers::default();
    let mut dice = Dice(seed);
    for step in 0..45_i64 {
        let now = T0 + step * 2 * DAY + i64::try_from(dice.roll(DAY as u64)).unwrap();
        let asset = ASSETS[usize::try_from(dice.roll(3)).unwrap()];
        // A scan: some of forty advisories, with a disclosed severity or none.
        let mut findings = Vec::new();
        for n in 0..40 {
            if dice.roll(3) == 0 {
                continue;
            }
            let severity = match dice.roll(6) {
                5 => None,
                r => Severity::from_rank(i64::try_from(r).unwrap()),
            };
            findings.push(finding(n, severity));
        }
        store
            .vulns()
            .import(&ctx(now), &sla, trivy_scan(asset, findings))
            .await
            .unwrap();
        // Some judgement on what is there.
        let live = all_findings(store, now).await;
        for f in &live {
            if dice.roll(12) != 0 {
                continue;
            }
            let at = ctx(now + 1000);
            let v = store.vulns();
            let _ = match f.state {
                FindingState::Triage => v
                    .rate(&at, &sla, f.id, Severity::High, "rated by hand")
                    .await
                    .map(drop),
                FindingState::Open if dice.roll(2) == 0 => v
                    .accept(&at, f.id, Timestamp::from_millis(now + 5 * DAY), "later")
                    .await
                    .map(drop),
                FindingState::Open => v.false_positive(&at, f.id, "not used").await.map(drop),
                FindingState::FalsePositive => {
                    v.reopen(&at, &sla, f.id, "used after all").await.map(drop)
                }
                _ => Ok(()),
            };
        }
        store.vulns().timers(&ctx(now + 2000), &sla).await.unwrap();
    }
}

async fn compare(store: &Store, now: i64) {
    let now_t = Timestamp::from_millis(now);
    let since = Timestamp::from_millis(now - i64::try_from(PERIOD.as_millis()).unwrap());
    let v = store.vulns();
    let marker = v.changed_at().await.unwrap();
    v.refresh_figures(now_t, marker).await.unwrap();
    let kept = v.kept_figures(None).await.unwrap().unwrap();
    assert_eq!(kept.computed_at, now_t);
    assert_eq!(kept.since, since);
    assert_eq!(kept.marker, marker);
    assert_eq!(
        kept.stats,
        v.stats(None, since, now_t).await.unwrap(),
        "all at {now}"
    );
    assert_eq!(
        kept.assets,
        v.assets(now_t).await.unwrap(),
        "assets at {now}"
    );
    let spans = v.spans(None, since, now_t).await.unwrap();
    assert_eq!(
        kept.burndown,
        warden_vuln::burndown::burndown(&spans, since.as_millis(), now, POINTS),
        "burn-down at {now}"
    );
    for asset in ASSETS {
        let one = v.kept_figures(Some(asset)).await.unwrap().unwrap();
        assert_eq!(
            one.stats,
            v.stats(Some(asset), since, now_t).await.unwrap(),
            "{asset} at {now}"
        );
        let spans = v.spans(Some(asset), since, now_t).await.unwrap();
        assert_eq!(
            one.burndown,
            warden_vuln::burndown::burndown(&spans, since.as_millis(), now, POINTS),
            "{asset}'s burn-down at {now}"
        );
        assert_eq!(one.assets, kept.assets);
    }
}

#[tokio::test]
async fn kept_figures_equal_the_live_queries() {
    for seed in [7, 1_234_567, 99_991] {
        for (store, _db, _dir) in stores().await {
            history(&store, seed).await;
            let v = store.vulns();
            let states: Vec<FindingState> = all_findings(&store, T0 + 90 * DAY)
                .await
                .iter()
                .map(|f| f.state)
                .collect();
            // The history reached the states the figures count separately.
            for s in [
                FindingState::Open,
                FindingState::Fixed,
                FindingState::FalsePositive,
            ] {
                assert!(states.contains(&s), "seed {seed}: no {s:?} finding");
            }
            // During the history, at its end, and long after (everything is overdue, and
            // fixes have left the period).
            for now in [T0 + 45 * DAY, T0 + 91 * DAY, T0 + 400 * DAY] {
                compare(&store, now).await;
            }
            assert_eq!(v.kept_figures(Some("nothing-here")).await.unwrap(), None);
        }
    }
}

#[tokio::test]
async fn the_marker_moves_with_changes_to_findings_only() {
    let sla = SlaTiers::default();
    for (store, _db, _dir) in stores().await {
        let v = store.vulns();
        assert_eq!(v.changed_at().await.unwrap(), 0);
        assert_eq!(v.kept_figures(None).await.unwrap(), None);
        assert_eq!(v.kept_figures_state().await.unwrap(), None);
        v.import(
            &ctx(T0),
            &sla,
            trivy_scan("api", vec![finding(1, Some(Severity::Critical))]),
        )
        .await
        .unwrap();
        let after_import = v.changed_at().await.unwrap();
        assert!(after_import > 0);
        // An event that changes no finding leaves it.
        store
            .create_group(
                &ctx(T0 + 1),
                warden_model::GroupName::new("ops".to_owned()).unwrap(),
                String::new(),
            )
            .await
            .unwrap();
        assert_eq!(v.changed_at().await.unwrap(), after_import);
        // The critical's SLA (7 days) runs out: the breach is a change.
        v.timers(&ctx(T0 + 8 * DAY), &sla).await.unwrap();
        let after_breach = v.changed_at().await.unwrap();
        assert!(after_breach > after_import);
        v.refresh_figures(Timestamp::from_millis(T0 + 8 * DAY), after_breach)
            .await
            .unwrap();
        let (at, marker, _) = v.kept_figures_state().await.unwrap().unwrap();
        assert_eq!((at.as_millis(), marker), (T0 + 8 * DAY, after_breach));
        let kept = v.kept_figures(None).await.unwrap().unwrap();
        assert_eq!(kept.stats.overdue, 1);
        // A pass as of an earlier moment (a slower replica) does not replace a later one.
        v.refresh_figures(Timestamp::from_millis(T0), after_import)
            .await
            .unwrap();
        assert_eq!(
            v.kept_figures_state().await.unwrap().unwrap().0.as_millis(),
            T0 + 8 * DAY
        );
    }
}

#[test]
fn figures_are_recomputed_on_change_after_a_pause_and_when_old() {
    let at = |ms: i64| Timestamp::from_millis(T0 + ms);
    let every = Duration::from_secs(300);
    let fast = Some((at(0), 5, Duration::from_millis(20)));
    let slow = Some((at(0), 5, Duration::from_secs(3)));
    assert!(figures::due(None, 0, at(0), every));
    // Unchanged: only when older than `every`.
    assert!(!figures::due(fast, 5, at(299_999), every));
    assert!(figures::due(fast, 5, at(300_000), every));
    // Changed: after a second for a fast pass, after ten passes' time for a slow one.
    assert!(!figures::due(fast, 6, at(999), every));
    assert!(figures::due(fast, 6, at(1000), every));
    assert!(!figures::due(slow, 6, at(29_999), every));
    assert!(figures::due(slow, 6, at(30_000), every));
    // A clock behind the kept figures' (another replica's) waits.
    assert!(!figures::due(fast, 6, at(-5000), every));
}

#[tokio::test]
async fn a_bounded_count_says_more_than() {
    let sla = SlaTiers::default();
    for (store, _db, _dir) in stores().await {
        let v = store.vulns();
        v.import(
            &ctx(T0),
            &sla,
            trivy_scan(
                "api",
                (0..25).map(|n| finding(n, Some(Severity::Low))).collect(),
            ),
        )
        .await
        .unwrap();
        let count = async |bound: Option<u32>, limit: u32| {
            let page = v
                .findings(&FindingFilter {
                    asset: None,
                    severity: None,
                    states: Vec::new(),
                    overdue: false,
                    now: Timestamp::from_millis(T0),
                    text: None,
                    sort: FindingSort::Number,
                    after: None,
                    limit,
                    count_up_to: bound,
                })
                .await
                .unwrap();
            assert_eq!(page.findings.len(), 25.min(limit as usize));
            (page.total, page.capped)
        };
        // Counted apart from a full page…
        assert_eq!(count(None, 10).await, (25, false));
        assert_eq!(count(Some(25), 10).await, (25, false));
        assert_eq!(count(Some(24), 10).await, (24, true));
        assert_eq!(count(Some(10), 10).await, (10, true));
        // …and taken from a first page that holds every match.
        assert_eq!(count(None, 30).await, (25, false));
        assert_eq!(count(Some(25), 30).await, (25, false));
        assert_eq!(count(Some(10), 30).await, (10, true));
    }
}
