//! Vulnerability findings on both backends: identity across scanners through aliases (never
//! severity), re-imports that fix and reopen, SLA clocks and alerts at their exact
//! boundaries with time passed in, re-rating with and without a clock restart, acceptance
//! expiry, tiers, and the remediation figures.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test")]

// The store's own helper: a fresh, migrated store of each backend.
#[path = "../../warden-store/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{ctx, stores};
use warden_model::Timestamp;
use warden_store::Store;
use warden_vuln::{ImportedFinding, Severity, SlaPolicy, SlaTiers};
use warden_vuln_store::{FindingFilter, FindingState, NewImport, NewReport, VulnStore};

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

fn finding(advisory: &str, aliases: &[&str], purl: &str, s: Option<Severity>) -> ImportedFinding {
    ImportedFinding {
        advisory: advisory.to_owned(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        package: Some(purl.to_owned()),
        location: None,
        fingerprint: None,
        fixed_in: None,
        no_fix: false,
        title: format!("{advisory} in {purl}"),
        disclosed: s,
        cvss: None,
    }
}

fn import(scanner: &str, findings: Vec<ImportedFinding>) -> NewImport {
    NewImport {
        asset: "api".to_owned(),
        scanner: scanner.to_owned(),
        format: scanner.to_owned(),
        file_name: "scan.json".to_owned(),
        sha256: "00".repeat(32),
        findings,
    }
}

/// A report on asset `web` without a rating.
fn unrated_report(title: &str) -> NewReport {
    NewReport {
        asset: "web".to_owned(),
        title: title.to_owned(),
        details: "steps…".to_owned(),
        severity: None,
    }
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

async fn find(store: &Store, advisory: &str) -> warden_vuln_store::Finding {
    let page = store
        .vulns()
        .findings(&FindingFilter {
            asset: None,
            severity: None,
            states: FindingState::ALL.to_vec(),
            overdue: false,
            now: at(T0),
            text: None,
            sort: warden_vuln_store::FindingSort::Number,
            after: None,
            limit: 1000,
            count_up_to: None,
        })
        .await
        .unwrap();
    let f = page
        .findings
        .into_iter()
        .find(|f| f.advisory == advisory)
        .unwrap();
    store.vulns().finding(f.id).await.unwrap().unwrap()
}

async fn overdue(store: &Store, now: i64) -> Vec<String> {
    store
        .vulns()
        .findings(&FindingFilter {
            asset: None,
            severity: None,
            states: Vec::new(),
            overdue: true,
            now: at(now),
            text: None,
            sort: warden_vuln_store::FindingSort::Number,
            after: None,
            limit: 100,
            count_up_to: None,
        })
        .await
        .unwrap()
        .findings
        .into_iter()
        .map(|f| f.advisory)
        .collect()
}

#[tokio::test]
async fn reimports_fix_and_reopen_findings_identified_across_scanners() {
    let sla = SlaTiers::default();
    for (store, _db, _dir) in stores().await {
        let libc = "pkg:deb/debian/libc6@2.28-10?arch=amd64&distro=debian-10";
        let first = vec![
            finding("CVE-2021-33574", &[], libc, Some(Severity::Critical)),
            // The same flaw at another path in the image: one finding.
            finding(
                "CVE-2021-33574",
                &[],
                "pkg:deb/debian/libc6@2.28-10?arch=i386",
                Some(Severity::Critical),
            ),
            finding("CVE-2024-0001", &[], "pkg:npm/left-pad@1.0.0", None),
            finding(
                "GHSA-aaaa-bbbb-cccc",
                &["CVE-2024-0003"],
                "pkg:cargo/tokio@1.0.0",
                Some(Severity::Medium),
            ),
        ];
        let s = store
            .vulns()
            .import(&ctx(T0), &sla, import("trivy", first.clone()))
            .await
            .unwrap();
        assert_eq!(
            (s.findings, s.opened, s.reopened, s.fixed, s.unchanged),
            (3, 3, 0, 0, 0)
        );
        let libc_f = find(&store, "CVE-2021-33574").await;
        assert_eq!(libc_f.state, FindingState::Open);
        assert_eq!(libc_f.effective, Some(Severity::Critical));
        assert_eq!(libc_f.due_at, Some(at(T0 + 24 * HOUR)));
        assert_eq!(libc_f.subject, "pkg:deb/debian/libc6@2.28-10");
        let unrated = find(&store, "CVE-2024-0001").await;
        assert_eq!(
            (unrated.state, unrated.effective, unrated.due_at),
            (FindingState::Triage, None, None)
        );

        // Grype names the tokio flaw by its CVE with the GHSA as a related id, and rates it
        // higher: the same finding, its disclosed rating kept.
        let grype = vec![finding(
            "CVE-2024-0003",
            &["GHSA-aaaa-bbbb-cccc"],
            "pkg:cargo/tokio@1.0.0",
            Some(Severity::High),
        )];
        let s = store
            .vulns()
            .import(&ctx(T0 + 1), &sla, import("grype", grype.clone()))
            .await
            .unwrap();
        assert_eq!((s.findings, s.opened, s.unchanged), (1, 0, 1));
        let tokio = find(&store, "GHSA-aaaa-bbbb-cccc").await;
        assert_eq!(tokio.scanners, vec!["grype", "trivy"]);
        assert_eq!(tokio.effective, Some(Severity::Medium));

        // Trivy no longer sees tokio, Grype still does: not fixed. Then the npm package goes.
        let s = store
            .vulns()
            .import(&ctx(T0 + 2), &sla, import("trivy", first[..3].to_vec()))
            .await
            .unwrap();
        assert_eq!((s.fixed, s.unchanged), (0, 2));
        let s = store
            .vulns()
            .import(&ctx(T0 + 3), &sla, import("trivy", first[..1].to_vec()))
            .await
            .unwrap();
        assert_eq!((s.findings, s.fixed, s.unchanged), (1, 1, 1));
        let gone = find(&store, "CVE-2024-0001").await;
        assert_eq!(
            (gone.state, gone.fixed_at),
            (FindingState::Fixed, Some(at(T0 + 3)))
        );
        let s = store
            .vulns()
            .import(&ctx(T0 + 4), &sla, import("grype", Vec::new()))
            .await
            .unwrap();
        assert_eq!((s.findings, s.fixed), (0, 1));
        assert_eq!(
            find(&store, "GHSA-aaaa-bbbb-cccc").await.state,
            FindingState::Fixed
        );

        // The npm flaw comes back: reopened (still unrated, so in triage), first clock kept.
        // A different rating is not a different finding.
        let mut again = first[..3].to_vec();
        again[0].disclosed = Some(Severity::Low);
        let s = store
            .vulns()
            .import(&ctx(T0 + 5), &sla, import("trivy", again))
            .await
            .unwrap();
        assert_eq!(
            (s.findings, s.opened, s.reopened, s.unchanged),
            (2, 0, 1, 1)
        );
        let back = find(&store, "CVE-2024-0001").await;
        assert_eq!(
            (back.state, back.fixed_at, back.clock_start),
            (FindingState::Triage, None, at(T0))
        );
        let changes: Vec<&str> = back.history.iter().map(|h| h.change.as_str()).collect();
        assert_eq!(changes, vec!["fixed", "reopened"]);
        assert_eq!(
            find(&store, "CVE-2021-33574").await.effective,
            Some(Severity::Critical)
        );

        let events = store.recent_events(100).await.unwrap();
        let imports: Vec<_> = events
            .iter()
            .filter(|e| e.action == "vuln.import")
            .collect();
        assert_eq!(imports.len(), 6);
        assert_eq!(imports[5].details["reopened"], 1);
        assert_eq!(imports[5].details["sha256"], "00".repeat(32));
    }
}

#[expect(
    clippy::too_many_lines,
    reason = "one clock's story, told in order as time passes"
)]
#[tokio::test]
async fn sla_clocks_alerts_judgement_and_expiry_with_time_passed_in() {
    let sla = SlaTiers::default();
    let restarting = SlaTiers::new([], true);
    for (store, _db, _dir) in stores().await {
        let findings = vec![
            finding("CVE-1", &[], "pkg:cargo/a@1", Some(Severity::Critical)),
            finding("CVE-2", &[], "pkg:cargo/b@1", Some(Severity::High)),
            finding("CVE-3", &[], "pkg:cargo/c@1", Some(Severity::Low)),
        ];
        store
            .vulns()
            .import(&ctx(T0), &sla, import("cargo-audit", findings))
            .await
            .unwrap();
        // Critical is due exactly 24 hours later; half-way is 12 hours.
        assert_eq!(
            store
                .vulns()
                .timers(&ctx(T0 + 12 * HOUR - 1), &sla)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .vulns()
                .timers(&ctx(T0 + 12 * HOUR), &sla)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .vulns()
                .timers(&ctx(T0 + 12 * HOUR + 1), &sla)
                .await
                .unwrap(),
            0
        );
        assert!(overdue(&store, T0 + 24 * HOUR - 1).await.is_empty());
        assert_eq!(
            store
                .vulns()
                .timers(&ctx(T0 + 24 * HOUR - 1), &sla)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .vulns()
                .timers(&ctx(T0 + 24 * HOUR), &sla)
                .await
                .unwrap(),
            1
        );
        assert_eq!(overdue(&store, T0 + 24 * HOUR).await, vec!["CVE-1"]);
        let events = store.recent_events(100).await.unwrap();
        let alerts: Vec<(&str, &str)> = events
            .iter()
            .filter(|e| e.action.starts_with("vuln.sla."))
            .map(|e| (e.action.as_str(), e.details["severity"].as_str().unwrap()))
            .collect();
        assert_eq!(
            alerts,
            vec![
                ("vuln.sla.half", "critical"),
                ("vuln.sla.breach", "critical")
            ]
        );

        // Re-rating keeps the clock by default; with restart_clock_on_rerate it starts again.
        let high = find(&store, "CVE-2").await;
        assert_eq!(high.due_at, Some(at(T0 + 7 * 24 * HOUR)));
        let rated = store
            .vulns()
            .rate(
                &ctx(T0 + HOUR),
                &sla,
                high.id,
                Severity::Critical,
                "exposed to the internet",
            )
            .await
            .unwrap();
        assert_eq!(
            (rated.effective, rated.disclosed),
            (Some(Severity::Critical), Some(Severity::High))
        );
        assert_eq!(rated.due_at, Some(at(T0 + 24 * HOUR)));
        assert_eq!(rated.rated_by.as_deref(), Some("operator"));
        let low = find(&store, "CVE-3").await;
        let rated = store
            .vulns()
            .rate(
                &ctx(T0 + HOUR),
                &restarting,
                low.id,
                Severity::Medium,
                "reachable",
            )
            .await
            .unwrap();
        assert_eq!(
            (rated.clock_start, rated.due_at),
            (at(T0 + HOUR), Some(at(T0 + HOUR + 30 * 24 * HOUR)))
        );
        let h = &store
            .vulns()
            .finding(low.id)
            .await
            .unwrap()
            .unwrap()
            .history[0];
        assert_eq!(
            (h.change.as_str(), &h.detail["restart_clock"]),
            ("rated", &serde_json::json!(true))
        );

        // Acceptance: excluded from overdue, reopens by itself at its end, audited.
        let err = store
            .vulns()
            .accept(&ctx(T0 + HOUR), high.id, at(T0), "later")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the acceptance must end in the future, not 2027-01-15T08:00:00.000Z"
        );
        let err = store
            .vulns()
            .accept(&ctx(T0 + HOUR), high.id, at(T0 + 400 * 24 * HOUR), "later")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "a risk is accepted for at most 366 days at a time"
        );
        let accepted = store
            .vulns()
            .accept(
                &ctx(T0 + HOUR),
                high.id,
                at(T0 + 48 * HOUR),
                "compensating WAF rule",
            )
            .await
            .unwrap();
        assert_eq!(
            (accepted.state, accepted.decided_by.as_deref()),
            (FindingState::Accepted, Some("operator"))
        );
        assert_eq!(overdue(&store, T0 + 30 * HOUR).await, vec!["CVE-1"]);
        assert_eq!(
            store
                .vulns()
                .timers(&ctx(T0 + 48 * HOUR - 1), &sla)
                .await
                .unwrap(),
            0
        );
        // At its end it reopens, already overdue (its clock never stopped): expiry and breach.
        assert_eq!(
            store
                .vulns()
                .timers(&ctx(T0 + 48 * HOUR), &sla)
                .await
                .unwrap(),
            1
        );
        let back = store.vulns().finding(high.id).await.unwrap().unwrap();
        assert_eq!(back.state, FindingState::Open);
        assert_eq!(back.history.last().unwrap().change, "accept_expired");
        assert_eq!(
            overdue(&store, T0 + 48 * HOUR).await,
            vec!["CVE-1", "CVE-2"]
        );

        // False positive, then a live-only change refused, then reopened by hand.
        let fp = store
            .vulns()
            .false_positive(&ctx(T0 + 49 * HOUR), back.id, "not reachable: feature off")
            .await
            .unwrap();
        assert_eq!(fp.state, FindingState::FalsePositive);
        let err = store
            .vulns()
            .rate(&ctx(T0 + 49 * HOUR), &sla, back.id, Severity::Low, "x")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "finding {} is false_positive: only a live finding can be re-rated",
                back.id
            )
        );
        let err = store
            .vulns()
            .accept(&ctx(T0 + 49 * HOUR), back.id, at(T0 + 50 * HOUR), "x")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "finding {} is false_positive: only a live finding's risk can be accepted",
                back.id
            )
        );
        let reopened = store
            .vulns()
            .reopen(&ctx(T0 + 50 * HOUR), &sla, back.id, "feature turned on")
            .await
            .unwrap();
        assert_eq!(reopened.state, FindingState::Open);
        let err = store
            .vulns()
            .reopen(&ctx(T0 + 50 * HOUR), &sla, back.id, "again")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("finding {} is already open", back.id)
        );
        // A decision on the finding as read before the reopening: stale, and nothing changes;
        // as read now, it goes through.
        let changes = store
            .vulns()
            .finding(back.id)
            .await
            .unwrap()
            .unwrap()
            .history
            .len();
        let changes = i64::try_from(changes).unwrap();
        let err = store
            .vulns()
            .as_read(Some(changes - 1))
            .false_positive(&ctx(T0 + 51 * HOUR), back.id, "not reachable")
            .await
            .unwrap_err();
        assert!(matches!(err, warden_store::StoreError::Stale(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "finding {} changed since it was read ({} then, {changes} now): read it again, \
                 then decide",
                back.id,
                warden_model::count(u64::try_from(changes - 1).unwrap(), "change", "changes")
            )
        );
        let now = store.vulns().finding(back.id).await.unwrap().unwrap();
        assert_eq!(
            (now.state, now.history.len()),
            (FindingState::Open, usize::try_from(changes).unwrap())
        );
        let decided = store
            .vulns()
            .as_read(Some(changes))
            .false_positive(&ctx(T0 + 51 * HOUR), back.id, "not reachable")
            .await
            .unwrap();
        assert_eq!(decided.state, FindingState::FalsePositive);
        let err = store.vulns().finding(999_999).await.unwrap();
        assert!(err.is_none());
        let err = store
            .vulns()
            .rate(&ctx(T0), &sla, 999_999, Severity::Low, "x")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "finding `999999` not found");
    }
}

#[tokio::test]
async fn tiers_policy_changes_reports_and_figures() {
    for (store, _db, _dir) in stores().await {
        let sla = SlaTiers::default();
        // Nothing is recorded before the first finding; the first import records the policy.
        assert!(!store.vulns().apply_sla(&ctx(T0), &sla).await.unwrap());
        let findings = vec![
            finding("CVE-1", &[], "pkg:cargo/a@1", Some(Severity::Critical)),
            finding("CVE-2", &[], "pkg:cargo/b@1", Some(Severity::High)),
            finding("CVE-3", &[], "pkg:cargo/c@1", Some(Severity::Informational)),
        ];
        store
            .vulns()
            .import(&ctx(T0), &sla, import("trivy", findings.clone()))
            .await
            .unwrap();
        assert_eq!(find(&store, "CVE-3").await.due_at, None);
        assert!(!store.vulns().apply_sla(&ctx(T0), &sla).await.unwrap());
        let events = store.recent_events(10).await.unwrap();
        let first = events.iter().find(|e| e.action == "vuln.import").unwrap();
        assert_eq!(
            first.details["sla_policy_recorded"]["tiers"]["default"]["critical"],
            86_400
        );

        // An internet-facing tier with tighter clocks.
        let tiers = SlaTiers::new(
            [(
                "internet".to_owned(),
                SlaPolicy::new([
                    (Severity::Critical, Duration::from_secs(12 * 3600)),
                    (Severity::High, Duration::from_secs(3 * 86_400)),
                ]),
            )],
            false,
        );
        let err = store
            .vulns()
            .set_tier(&ctx(T0), &tiers, "api", "dmz")
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown SLA tier `dmz`: configured tiers are default, internet"
        );
        let a = store
            .vulns()
            .set_tier(&ctx(T0), &tiers, "api", "internet")
            .await
            .unwrap();
        assert_eq!((a.tier.as_str(), a.open), ("internet", 3));
        assert_eq!(find(&store, "CVE-1").await.due_at, Some(at(T0 + 12 * HOUR)));
        assert_eq!(find(&store, "CVE-2").await.due_at, Some(at(T0 + 72 * HOUR)));

        // A changed default policy is recorded and applied to every tier's findings.
        let longer = SlaTiers::new(
            [(
                "default".to_owned(),
                SlaPolicy::new([(Severity::Critical, Duration::from_secs(48 * 3600))]),
            )],
            false,
        );
        assert!(
            store
                .vulns()
                .apply_sla(&ctx(T0 + 1), &longer)
                .await
                .unwrap()
        );
        assert_eq!(find(&store, "CVE-1").await.due_at, Some(at(T0 + 48 * HOUR)));
        assert_eq!(find(&store, "CVE-2").await.due_at, None);
        let events = store.recent_events(100).await.unwrap();
        let policy = events
            .iter()
            .rev()
            .find(|e| e.action == "vuln.sla.policy")
            .unwrap();
        assert_eq!(
            policy.details["policy"]["tiers"]["default"]["critical"],
            172_800
        );
        store.vulns().apply_sla(&ctx(T0 + 1), &sla).await.unwrap();
        store
            .vulns()
            .set_tier(&ctx(T0 + 1), &sla, "api", "default")
            .await
            .unwrap();

        // A report is a finding of its own, in triage unless rated.
        let report = store
            .vulns()
            .report(&ctx(T0), &sla, unrated_report("XSS in search"))
            .await
            .unwrap();
        assert_eq!(
            (report.state, report.source.as_str()),
            (FindingState::Triage, "report")
        );
        assert_eq!(report.advisory, format!("WARDEN-REPORT-{}", report.id));

        // Figures: the critical fixed in 10 h (on time), the high fixed in 9 days (late).
        store
            .vulns()
            .import(
                &ctx(T0 + 10 * HOUR),
                &sla,
                import("trivy", findings[1..].to_vec()),
            )
            .await
            .unwrap();
        store
            .vulns()
            .import(
                &ctx(T0 + 9 * 24 * HOUR),
                &sla,
                import("trivy", findings[2..].to_vec()),
            )
            .await
            .unwrap();
        let stats = store
            .vulns()
            .stats(None, at(T0), at(T0 + 10 * 24 * HOUR))
            .await
            .unwrap();
        assert_eq!(stats.fixed[&Severity::Critical], (1, 36_000.0));
        assert_eq!(stats.fixed[&Severity::High], (1, 777_600.0));
        assert_eq!(
            (
                stats.due_fixed,
                stats.due_fixed_on_time,
                stats.due_missed_open
            ),
            (2, 1, 0)
        );
        assert_eq!(stats.compliance(), Some(0.5));
        assert_eq!(
            (stats.open.get(&Severity::Informational), stats.triage),
            (Some(&1), 1)
        );
    }
}

/// A finding whose advisory has no fixed version waits: no due date, no alert, not overdue,
/// counted apart. The re-import that first shows a fix starts its clock then, with an event of
/// its own; a later import that loses the fix again does not stop it.
#[tokio::test]
async fn a_finding_without_a_fix_starts_its_clock_when_a_fix_is_published() {
    let sla = SlaTiers::default();
    let waiting = |advisory: &str, purl: &str, s: Option<Severity>| ImportedFinding {
        no_fix: true,
        ..finding(advisory, &[], purl, s)
    };
    let fixed = |advisory: &str, purl: &str, s: Option<Severity>, v: &str| ImportedFinding {
        fixed_in: Some(v.to_owned()),
        ..finding(advisory, &[], purl, s)
    };
    for (store, _db, _dir) in stores().await {
        let first = vec![
            waiting("CVE-9-1", "pkg:deb/debian/zlib@1", Some(Severity::Critical)),
            waiting("CVE-9-2", "pkg:deb/debian/curl@7", None),
            fixed(
                "CVE-9-3",
                "pkg:deb/debian/tar@1",
                Some(Severity::High),
                "1.1",
            ),
        ];
        let s = store
            .vulns()
            .import(&ctx(T0), &sla, import("trivy", first))
            .await
            .unwrap();
        assert_eq!((s.opened, s.fix_available), (3, 0));
        let zlib = find(&store, "CVE-9-1").await;
        assert_eq!(
            (zlib.state, zlib.no_fix, zlib.due_at, zlib.fix_seen_at),
            (FindingState::NoFix, true, None, None)
        );
        // Unrated, it is in triage; rated, it waits rather than opens.
        let curl = find(&store, "CVE-9-2").await;
        assert_eq!((curl.state, curl.no_fix), (FindingState::Triage, true));
        let curl = store
            .vulns()
            .rate(&ctx(T0 + HOUR), &sla, curl.id, Severity::High, "remote")
            .await
            .unwrap();
        assert_eq!((curl.state, curl.due_at), (FindingState::NoFix, None));
        // Twenty days on, a Critical's clock would be long gone: no alert, nothing overdue, but
        // it is live and counted. The High with a fix is overdue.
        let year = T0 + 20 * 24 * HOUR;
        assert_eq!(store.vulns().timers(&ctx(year), &sla).await.unwrap(), 1);
        let alerted: Vec<String> = store
            .recent_events(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.action.starts_with("vuln.sla."))
            .map(|e| e.target)
            .collect();
        let tar = find(&store, "CVE-9-3").await;
        assert_eq!(alerted, vec![format!("finding:{}", tar.id)]);
        assert_eq!(overdue(&store, year).await, vec!["CVE-9-3"]);
        let stats = store.vulns().stats(None, at(T0), at(year)).await.unwrap();
        assert_eq!((stats.no_fix, stats.triage, stats.overdue), (2, 0, 1));
        // The fix is published: the re-import shows it, and the clock starts from that import.
        let later = T0 + 30 * 24 * HOUR;
        let second = vec![
            fixed(
                "CVE-9-1",
                "pkg:deb/debian/zlib@1",
                Some(Severity::Critical),
                "1.3",
            ),
            waiting("CVE-9-2", "pkg:deb/debian/curl@7", None),
            fixed(
                "CVE-9-3",
                "pkg:deb/debian/tar@1",
                Some(Severity::High),
                "1.1",
            ),
        ];
        let s = store
            .vulns()
            .import(&ctx(later), &sla, import("trivy", second))
            .await
            .unwrap();
        assert_eq!((s.unchanged, s.fix_available), (3, 1));
        let zlib = find(&store, "CVE-9-1").await;
        assert_eq!(
            (
                zlib.state,
                zlib.no_fix,
                zlib.clock_start,
                zlib.due_at,
                zlib.fixed_in.as_deref()
            ),
            (
                FindingState::Open,
                false,
                at(later),
                Some(at(later + 24 * HOUR)),
                Some("1.3")
            )
        );
        assert_eq!(zlib.fix_seen_at, Some(at(later)));
        let change = zlib.history.last().unwrap();
        assert_eq!(change.change, "fix_available");
        assert_eq!(change.detail["clock_start"], at(later).rfc3339_millis());
        let events = store.recent_events(5).await.unwrap();
        let event = events
            .iter()
            .find(|e| e.action == "vuln.fix.available")
            .unwrap();
        assert_eq!(event.target, format!("finding:{}", zlib.id));
        assert_eq!(event.details["fixed_in"], "1.3");
        assert_eq!(
            event.details["due_at"],
            at(later + 24 * HOUR).rfc3339_millis()
        );
        // Nothing more to start: the timers find no clock waiting.
        assert_eq!(
            store.vulns().timers(&ctx(later + 1), &sla).await.unwrap(),
            0
        );
        // An import that loses the fix again does not stop the clock.
        let third = vec![waiting(
            "CVE-9-1",
            "pkg:deb/debian/zlib@1",
            Some(Severity::Critical),
        )];
        store
            .vulns()
            .import(&ctx(later + HOUR), &sla, import("trivy", third))
            .await
            .unwrap();
        let zlib = find(&store, "CVE-9-1").await;
        assert_eq!(
            (zlib.state, zlib.due_at),
            (FindingState::Open, Some(at(later + 24 * HOUR)))
        );
        // Fixed a day after the fix appeared: its time to remediate counts from the fix (the
        // others went with the import before, the High late).
        store
            .vulns()
            .import(&ctx(later + 24 * HOUR), &sla, import("trivy", Vec::new()))
            .await
            .unwrap();
        let stats = store
            .vulns()
            .stats(None, at(T0), at(later + 24 * HOUR))
            .await
            .unwrap();
        assert_eq!(stats.fixed[&Severity::Critical], (1, 24.0 * 3600.0));
        assert_eq!((stats.due_fixed, stats.due_fixed_on_time), (2, 1));
    }
}

/// A text search's matches: the advisories of every page, and the total.
async fn search(store: &Store, asset: Option<&str>, text: &str) -> (Vec<String>, i64) {
    let mut filter = FindingFilter {
        asset: asset.map(str::to_owned),
        severity: None,
        states: Vec::new(),
        overdue: false,
        now: at(T0),
        text: Some(text.to_owned()),
        sort: warden_vuln_store::FindingSort::Number,
        after: None,
        limit: 400,
        count_up_to: None,
    };
    let mut found = Vec::new();
    let mut total = None;
    loop {
        let page = store.vulns().findings(&filter).await.unwrap();
        total.get_or_insert(page.total);
        found.extend(page.findings.into_iter().map(|f| f.advisory));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    (found, total.unwrap())
}

#[tokio::test]
async fn text_search_reads_each_distinct_text_once() {
    let sla = SlaTiers::default();
    for (store, _db, _dir) in stores().await {
        let backend = store.location().backend();
        let mut long = finding("CVE-2024-0100", &[], "pkg:npm/long@1.0.0", None);
        // Past the 600 characters the search reads.
        long.title = format!("early words {} needle-late", "x".repeat(700));
        let mut escaped = finding("CVE-2024-0101", &[], "pkg:npm/odd@1.0.0", None);
        escaped.title = "100%_off under c:\\path".to_owned();
        let mut accented = finding("CVE-2024-0102", &[], "pkg:npm/umlaut@1.0.0", None);
        accented.title = "Ärger in ÜBER-Modul".to_owned();
        let mut shared = finding("CVE-2024-0001", &[], "pkg:npm/left-pad@1.0.0", None);
        shared.title = "Prototype Pollution in LEFT-PAD".to_owned();
        let mut first = vec![shared.clone(), long, escaped, accented];
        // Enough distinct texts that a common search reads the findings in order instead.
        first.extend(
            (0..1_100).map(|i| finding(&format!("BULK-{i:04}"), &[], "pkg:npm/bulk@1.0.0", None)),
        );
        let mut api = import("trivy", first);
        api.asset = "api".to_owned();
        store.vulns().import(&ctx(T0), &sla, api).await.unwrap();
        let mut web = import("grype", vec![shared]);
        web.asset = "web".to_owned();
        store.vulns().import(&ctx(T0), &sla, web).await.unwrap();
        store
            .vulns()
            .report(
                &ctx(T0),
                &sla,
                unrated_report("Stored XSS in the search box"),
            )
            .await
            .unwrap();

        // Advisory, package and title, in any ASCII case; a text two assets share.
        for text in [
            "left-pad",
            "LEFT-Pad",
            "prototype pollution",
            "cve-2024-0001",
        ] {
            let (found, total) = search(&store, None, text).await;
            assert_eq!(
                found,
                ["CVE-2024-0001", "CVE-2024-0001"],
                "{backend:?} {text}"
            );
            assert_eq!(total, 2, "{backend:?} {text}");
        }
        assert_eq!(search(&store, Some("web"), "left-pad").await.1, 1);
        let (found, _) = search(&store, None, "xss in the SEARCH").await;
        assert_eq!(
            found.len(),
            1,
            "{backend:?}: the report is found by its title"
        );
        assert!(found[0].starts_with("WARDEN-REPORT-"), "{found:?}");
        // LIKE's wildcards and its escape are plain characters in what was typed.
        for text in ["100%_off", "c:\\path"] {
            assert_eq!(
                search(&store, None, text).await.0,
                ["CVE-2024-0101"],
                "{backend:?} {text}"
            );
        }
        for text in ["100%x", "1_0", "zzzq", "c:\\\\path"] {
            assert_eq!(
                search(&store, None, text).await,
                (Vec::new(), 0),
                "{backend:?} {text}"
            );
        }
        // Only ASCII letters fold, alike on both backends; the first 600 characters are
        // searched.
        for (text, n) in [
            ("ärger in über", 0),
            ("Ärger in ÜBER-modul", 1),
            ("early words", 1),
            ("needle-late", 0),
        ] {
            assert_eq!(search(&store, None, text).await.1, n, "{backend:?} {text}");
        }
        // More than a thousand distinct texts match: every one is still found, in order,
        // across pages; a rarer one is read by its text.
        let (found, total) = search(&store, Some("api"), "bulk-").await;
        let expected: Vec<String> = (0..1_100).map(|i| format!("BULK-{i:04}")).collect();
        assert_eq!((found, total), (expected, 1_100), "{backend:?}");
        assert_eq!(search(&store, None, "bulk-0007").await.0, ["BULK-0007"]);
        // Counted up to a bound: a common text's findings from its texts, on one asset and
        // with the other filters; the filters alone from the findings.
        for (asset, text, severity, counted) in [
            ("api", Some("bulk-"), None, (1_000, true)),
            ("api", None, None, (1_000, true)),
            ("web", Some("bulk-"), None, (0, false)),
            ("api", Some("bulk-"), Some(Severity::Critical), (0, false)),
            ("api", Some("bulk-00"), None, (100, false)),
        ] {
            let filter = FindingFilter {
                asset: Some(asset.to_owned()),
                severity,
                states: Vec::new(),
                overdue: false,
                now: at(T0),
                text: text.map(str::to_owned),
                sort: warden_vuln_store::FindingSort::Number,
                after: None,
                limit: 50,
                count_up_to: Some(1_000),
            };
            let page = store.vulns().findings(&filter).await.unwrap();
            assert_eq!(
                (page.total, page.capped),
                counted,
                "{backend:?} {asset} {text:?} {severity:?}"
            );
        }

        // Each distinct text is kept once, and is what the migration computes in SQL for the
        // findings that were there before it.
        let texts: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM vuln_texts")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(texts, 4 + 1_100 + 1, "{backend:?}");
        let in_sql = match backend {
            warden_store::Backend::Sqlite => {
                "substr(lower(f.advisory || char(10) || COALESCE(f.package, '') || char(10) || f.title), 1, 600)"
            }
            warden_store::Backend::Postgres => {
                "substr(lower((f.advisory || E'\\n' || COALESCE(f.package, '') || E'\\n' || f.title) COLLATE \"C\"), 1, 600)"
            }
        };
        let differing: i64 = sqlx::query_scalar(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM vuln_findings f \
             LEFT JOIN vuln_texts t ON t.id = f.text_id WHERE t.text IS NULL OR t.text <> {in_sql}"
        ))
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(differing, 0, "{backend:?}");
    }
}
