//! The vulnerability core: CVSS base scores against FIRST's worked values, severities from
//! scanners' words, SLA clocks at their boundaries, and cargo-audit's real output (copied
//! into tests/fixtures), with the exact error for each known bad input.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test"
)]

use std::time::Duration;

use proptest::prelude::*;
use warden_model::Timestamp;
use warden_vuln::{Cvss31, Severity, SlaPolicy, cargo_audit, osv, rate};

fn score(vector: &str) -> f64 {
    Cvss31::parse(vector).unwrap().base_score()
}

#[test]
fn cvss_base_scores_match_the_specification() {
    assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), 9.8);
    assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"), 10.0);
    assert_eq!(score("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"), 5.5);
    assert_eq!(score("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N"), 3.1);
    assert_eq!(score("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"), 6.1);
    assert_eq!(score("CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"), 8.8);
    assert_eq!(score("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N"), 0.0);
    // Temporal metrics are allowed and do not change the base score.
    assert_eq!(
        score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O"),
        9.8
    );
    let sev = |v: &str| Cvss31::parse(v).unwrap().severity();
    assert_eq!(
        sev("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        Severity::Critical
    );
    assert_eq!(
        sev("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"),
        Severity::Medium
    );
    assert_eq!(
        sev("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N"),
        Severity::Informational
    );
}

#[test]
fn cvss_v4_vectors_are_scored_by_the_specification_tables() {
    // FIRST's CVSS v4.0 calculator: 9.3 and 6.9 for these base vectors.
    let r = rate("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
    assert_eq!((r.score, r.severity), (9.3, Severity::Critical));
    let r = rate("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N").unwrap();
    assert_eq!((r.score, r.severity), (6.9, Severity::Medium));
    let r = rate("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
    assert_eq!((r.score, r.severity), (9.8, Severity::Critical));
}

#[test]
fn unknown_cvss_vectors_have_exact_errors() {
    let err = |v: &str| rate(v).unwrap_err().to_string();
    assert_eq!(
        err("CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P"),
        "unknown CVSS vector `CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P`: it must start with CVSS:4.0/, CVSS:3.1/ or CVSS:3.0/"
    );
    assert_eq!(
        err("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N"),
        "unknown CVSS vector `CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N`: missing mandatory CVSSv4 SA (Availability Impact to the Subsequent System) metric"
    );
    assert_eq!(
        err("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"),
        "unknown CVSS vector `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H`: base metric `A` is missing"
    );
    assert_eq!(
        err("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        "unknown CVSS vector `CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`: `AV:X` is not a value of `AV`"
    );
    assert_eq!(
        err("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        "unknown CVSS vector `CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`: `AV` appears twice"
    );
    assert_eq!(
        err("CVSS:3.1/AV:N/ZZ:1"),
        "unknown CVSS vector `CVSS:3.1/AV:N/ZZ:1`: unknown metric `ZZ`"
    );
}

#[test]
fn scanners_words_and_unrated_advisories() {
    assert_eq!(Severity::from_scanner("CRITICAL"), Some(Severity::Critical));
    assert_eq!(Severity::from_scanner("Moderate"), Some(Severity::Medium));
    assert_eq!(
        Severity::from_scanner("negligible"),
        Some(Severity::Informational)
    );
    assert_eq!(
        Severity::from_scanner("UNKNOWN"),
        None,
        "unrated is not guessed"
    );
    assert_eq!(Severity::from_scanner(""), None);
}

#[test]
fn sla_clocks_are_exact_durations() {
    let sla = SlaPolicy::default();
    let start = Timestamp::from_millis(1_700_000_000_000);
    let hours = |h: u64| start.plus(Duration::from_secs(h * 3600));
    assert_eq!(
        sla.due_at(start, Some(Severity::Critical)),
        Some(hours(24)),
        "24 hours, not a day boundary"
    );
    assert_eq!(sla.due_at(start, Some(Severity::High)), Some(hours(7 * 24)));
    assert_eq!(
        sla.due_at(start, Some(Severity::Medium)),
        Some(hours(30 * 24))
    );
    assert_eq!(sla.due_at(start, Some(Severity::Low)), Some(hours(90 * 24)));
    assert_eq!(sla.due_at(start, Some(Severity::Informational)), None);
    assert_eq!(
        sla.due_at(start, None),
        None,
        "unrated: in triage, no clock"
    );
    assert_eq!(
        sla.used(start, Some(Severity::Critical), hours(12)),
        Some(0.5)
    );
    assert_eq!(
        sla.used(start, Some(Severity::Critical), hours(24)),
        Some(1.0)
    );
    let just_before = Timestamp::from_millis(hours(24).as_millis() - 1);
    assert!(
        sla.used(start, Some(Severity::Critical), just_before)
            .unwrap()
            < 1.0
    );
    let internet = SlaPolicy::new([(Severity::Critical, Duration::from_secs(4 * 3600))]);
    assert_eq!(
        internet.due_at(start, Some(Severity::Critical)),
        Some(hours(4))
    );
    assert_eq!(internet.due_at(start, Some(Severity::High)), None);
}

fn scan(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cargo_audit")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn cargo_audit_reports_become_findings() {
    let found = cargo_audit::parse("many_findings.json", &scan("many_findings.json")).unwrap();
    let summary: Vec<(&str, Option<&str>, Option<Severity>)> = found
        .iter()
        .map(|f| (f.advisory.as_str(), f.package.as_deref(), f.disclosed))
        .collect();
    assert_eq!(
        summary,
        [
            ("RUSTSEC-2020-0091", Some("pkg:cargo/arc-swap@0.4.7"), None),
            ("RUSTSEC-2021-0020", Some("pkg:cargo/hyper@0.13.9"), None),
            ("RUSTSEC-2021-0003", Some("pkg:cargo/smallvec@0.6.13"), None),
            ("RUSTSEC-2021-0003", Some("pkg:cargo/smallvec@1.5.0"), None),
            (
                "RUSTSEC-2021-0064",
                Some("pkg:cargo/cpuid-bool@0.1.2"),
                Some(Severity::Informational)
            ),
            (
                "RUSTSEC-2020-0016",
                Some("pkg:cargo/net2@0.2.35"),
                Some(Severity::Informational)
            ),
            (
                "RUSTSEC-2020-0056",
                Some("pkg:cargo/stdweb@0.4.20"),
                Some(Severity::Informational)
            ),
        ]
    );
    assert_eq!(found[0].aliases, ["CVE-2020-35711"]);
    assert!(
        cargo_audit::parse("none.json", &scan("no_findings.json"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_cargo_audit_files_name_the_position() {
    let err = |text: &str| {
        cargo_audit::parse("audit.json", text)
            .unwrap_err()
            .to_string()
    };
    let full = scan("many_findings.json");
    let truncated = &full[..full.len() / 2];
    assert!(
        err(truncated).starts_with("audit.json: not a cargo-audit report at line "),
        "{}",
        err(truncated)
    );
    assert_eq!(
        err("{\"vulnerabilities\": {\"list\": [{\"package\": 7}]}}"),
        "audit.json: not a cargo-audit report at line 1 column 43 (`vulnerabilities.list[0].package`): invalid type: integer `7`, expected struct Package"
    );
    assert_eq!(
        err("{\"SchemaVersion\": 2, \"Results\": []}"),
        "audit.json: not a cargo-audit report at line 1 column 35: missing field `vulnerabilities`"
    );
}

fn osv_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/osv_scanner")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn osv_scanner_reports_become_findings() {
    let found = osv::parse("some_findings.json", &osv_file("some_findings.json")).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].advisory, "MAL-2023-1035");
    assert_eq!(found[0].aliases, ["GHSA-8348-2q94-ffjx"]);
    assert_eq!(found[0].package.as_deref(), Some("pkg:npm/flot-axis@0.0.0"));
    assert_eq!(found[0].disclosed, None, "no rating: unrated, for triage");
    // OSV-Scanner writes nothing when it finds nothing.
    assert!(
        osv::parse("none.json", &osv_file("no_findings.json"))
            .unwrap()
            .is_empty()
    );
    // A CVSS vector rates it; failing that, the database's word.
    let rated = r#"{"results": [{"packages": [{"package": {"name": "tokio", "version": "1.0.0", "ecosystem": "crates.io"},
        "vulnerabilities": [
          {"id": "GHSA-a", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]},
          {"id": "GHSA-b", "database_specific": {"severity": "MODERATE"}}]}]}]}"#;
    let found = osv::parse("rated.json", rated).unwrap();
    assert_eq!(found[0].package.as_deref(), Some("pkg:cargo/tokio@1.0.0"));
    assert_eq!(
        (found[0].disclosed, found[1].disclosed),
        (Some(Severity::Critical), Some(Severity::Medium))
    );
    let err = osv::parse("x.json", "{\"results\": {}}")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "x.json: not an OSV-Scanner report at line 1 column 12 (`results`): invalid type: map, expected a sequence"
    );
}

proptest! {
    #[test]
    fn osv_parse_never_panics(text in "\\PC{0,300}") {
        let _ = osv::parse("x.json", &text);
    }

    #[test]
    fn cvss_parse_never_panics(v in "(CVSS:3\\.[01]/)?([A-Z]{1,3}:[A-Z]{0,2}/?){0,12}") {
        if let Ok(c) = Cvss31::parse(&v) {
            let s = c.base_score();
            prop_assert!((0.0..=10.0).contains(&s));
        }
    }

    #[test]
    fn cargo_audit_parse_never_panics(text in "\\PC{0,300}") {
        let _ = cargo_audit::parse("x.json", &text);
    }
}
