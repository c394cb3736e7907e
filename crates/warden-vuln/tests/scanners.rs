//! SARIF, Trivy and Grype outputs (real ones, copied into tests/fixtures), telling formats
//! apart, identities that merge the same flaw across scanners, and the exact one-line error
//! for each known bad input.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test"
)]

use proptest::prelude::*;
use warden_vuln::{Format, ImportedFinding, Severity, grype, parse, sarif, trivy};

fn fixture(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn auto(path: &str) -> (Format, Vec<ImportedFinding>) {
    parse(None, path, &fixture(path)).unwrap()
}

fn ratings(found: &[ImportedFinding]) -> Vec<Option<Severity>> {
    found.iter().map(|f| f.disclosed).collect()
}

#[test]
fn formats_are_told_from_their_content() {
    let cases = [
        ("sarif/codeQL-output.sarif", Format::Sarif, 72),
        ("sarif/bash-report.sarif", Format::Sarif, 27),
        ("sarif/spotbugs.sarif", Format::Sarif, 56),
        ("sarif/njsscan.sarif", Format::Sarif, 2),
        ("sarif/appendix_k.sarif", Format::Sarif, 0),
        ("sarif/no_runs.sarif", Format::Sarif, 0),
        ("sarif/gitleaks_v7.sarif", Format::Sarif, 4),
        ("sarif/gitleaks_rule_references.sarif", Format::Sarif, 8),
        ("trivy/scheme_2_many_vulns.json", Format::Trivy, 5),
        ("trivy/scheme_2_no_vuln.json", Format::Trivy, 0),
        ("trivy/legacy_many_vulns.json", Format::Trivy, 93),
        ("trivy/kubernetes.json", Format::Trivy, 20),
        ("trivy/cvss_severity_source.json", Format::Trivy, 2),
        ("trivy/mixed_schemas.json", Format::Trivy, 8),
        ("trivy/legacy_list_mixed.json", Format::Trivy, 4),
        ("trivy/k8s_resources.json", Format::Trivy, 3),
        ("grype/fix_available.json", Format::Grype, 1),
        ("grype/no_vuln.json", Format::Grype, 0),
        ("grype/same_cve_different_paths.json", Format::Grype, 2),
        ("osv_scanner/some_findings.json", Format::OsvScanner, 1),
        ("cargo_audit/many_findings.json", Format::CargoAudit, 7),
        ("cargo_audit/no_findings.json", Format::CargoAudit, 0),
    ];
    for (path, format, n) in cases {
        let (found_format, found) = auto(path);
        assert_eq!((found_format, found.len()), (format, n), "{path}");
    }
}

#[test]
fn sarif_results_are_findings_of_their_rule_at_their_place() {
    let (_, codeql) = auto("sarif/codeQL-output.sarif");
    let first = &codeql[0];
    assert_eq!(first.advisory, "CodeQL/py/empty-except");
    assert_eq!(first.location.as_deref(), Some("good/db_init.py:39"));
    // GitHub's line hash identifies it, so a moved line is the same finding.
    assert_eq!(
        first.subject(),
        "fp:good/db_init.py:primaryLocationLineHash=9cbc869fbfffeb60:1"
    );
    // `level` says how sure the tool is, not how bad: no rating without security-severity.
    assert!(ratings(&codeql).iter().all(Option::is_none));
    // The tool's own word in the result's properties is a rating.
    let (_, bash) = auto("sarif/bash-report.sarif");
    assert!(ratings(&bash).iter().all(|r| *r == Some(Severity::Low)));
    assert_eq!(
        bash[0].location.as_deref(),
        Some("/home/damien/dd/docker/setEnv.sh:134")
    );
    // A file-wide hash does not tell results apart: the location does. 27 results on 12
    // (rule, line) pairs.
    let distinct: std::collections::BTreeSet<(String, Vec<String>)> =
        bash.iter().map(|f| (f.subject(), f.ids())).collect();
    assert_eq!(distinct.len(), 12);
    // An accepted suppression leaves the result out.
    assert!(auto("sarif/appendix_k.sarif").1.is_empty());
    // security-severity rates: 9.1 is critical.
    let rated = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "CodeQL", "rules": [
        {"id": "rs/sql-injection", "properties": {"security-severity": "9.1"}}]}},
        "results": [{"ruleId": "rs/sql-injection", "ruleIndex": 0, "message": {"text": "SQL built from input"},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/db.rs"}, "region": {"startLine": 7}}}]},
        {"ruleId": "rs/sql-injection", "kind": "pass", "message": {"text": "fine"}}]}]}"#;
    let found = sarif::parse("r.sarif", rated).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].disclosed, Some(Severity::Critical));
    assert_eq!(found[0].location.as_deref(), Some("src/db.rs:7"));
}

#[test]
fn trivy_reports_in_every_schema() {
    let (_, current) = auto("trivy/scheme_2_many_vulns.json");
    assert_eq!(current[0].advisory, "CVE-2020-15999");
    assert_eq!(
        current[0].package.as_deref(),
        Some("pkg:apk/alpine/freetype@2.9.1-r2")
    );
    assert_eq!(current[0].fixed_in.as_deref(), Some("2.9.1-r3"));
    assert_eq!(current[0].disclosed, Some(Severity::Medium));
    assert_eq!(
        ratings(&current),
        [
            Some(Severity::Medium),
            Some(Severity::High),
            Some(Severity::Critical),
            Some(Severity::Medium),
            Some(Severity::Medium)
        ]
    );
    // Trivy's PURL is kept; identity drops its qualifiers.
    let (_, purls) = auto("trivy/cvss_severity_source.json");
    assert_eq!(
        purls[0].package.as_deref(),
        Some("pkg:deb/ubuntu/curl@7.81.0-1ubuntu1.14?arch=amd64&distro=ubuntu-22.04")
    );
    assert_eq!(purls[0].subject(), "pkg:deb/ubuntu/curl@7.81.0-1ubuntu1.14");
    // The legacy list: one advisory Trivy could not rate stays unrated.
    let (_, legacy) = auto("trivy/legacy_many_vulns.json");
    assert_eq!(ratings(&legacy).iter().filter(|r| r.is_none()).count(), 1);
    assert_eq!(
        legacy[0].package.as_deref(),
        Some("pkg:deb/debian/apt@1.8.2.2")
    );
    // `trivy k8s`: vulnerabilities per workload and failed checks.
    let (_, k8s) = auto("trivy/kubernetes.json");
    let checks: Vec<&ImportedFinding> = k8s.iter().filter(|f| f.package.is_none()).collect();
    assert_eq!(checks.len(), 10);
    assert!(checks[0].advisory.starts_with("KSV"), "{:?}", checks[0]);
    assert_eq!(
        checks[0].location.as_deref(),
        Some("default/Deployment/redis-follower: Deployment/redis-follower")
    );
    // UNKNOWN from Trivy: the severity source's vector rates it.
    let unknown = fixture("trivy/cvss_severity_source.json").replacen(
        "\"Severity\": \"MEDIUM\"",
        "\"Severity\": \"UNKNOWN\"",
        1,
    );
    let found = trivy::parse("t.json", &unknown).unwrap();
    assert_eq!(found[0].disclosed, Some(Severity::Medium));
    assert_eq!(
        found[0].cvss.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N")
    );
}

/// Each scanner's word that an advisory has no fixed version yet, as it writes it.
#[test]
fn a_missing_fix_is_read_from_every_scanner() {
    let no_fix = |found: &[ImportedFinding]| found.iter().filter(|f| f.no_fix).count();
    // Trivy before 0.37 had no status: no `FixedVersion` is no fix (its `--ignore-unfixed`).
    let (_, legacy) = auto("trivy/legacy_many_vulns.json");
    assert_eq!(no_fix(&legacy), legacy.len());
    let (_, current) = auto("trivy/scheme_2_many_vulns.json");
    assert_eq!(no_fix(&current), 0);
    // Since 0.37 the status says it; `fixed` with a version, `affected` without.
    let (_, status) = auto("trivy/cvss_severity_source.json");
    assert_eq!(
        (status[0].no_fix, status[0].fixed_in.is_some()),
        (false, true)
    );
    let affected = fixture("trivy/cvss_severity_source.json")
        .replacen("\"Status\": \"fixed\"", "\"Status\": \"affected\"", 1)
        .replacen(
            "\"FixedVersion\": \"7.81.0-1ubuntu1.15\"",
            "\"FixedVersion\": \"\"",
            1,
        );
    let found = trivy::parse("t.json", &affected).unwrap();
    assert_eq!(
        (found[0].no_fix, found[0].fixed_in.as_deref()),
        (true, None)
    );
    // Under investigation is not "no fix": the clock runs.
    let unknown = affected.replacen(
        "\"Status\": \"affected\"",
        "\"Status\": \"under_investigation\"",
        1,
    );
    assert!(!trivy::parse("t.json", &unknown).unwrap()[0].no_fix);
    // Misconfigurations are fixed by changing the configuration: never `no_fix`.
    let (_, k8s) = auto("trivy/kubernetes.json");
    assert!(
        k8s.iter()
            .filter(|f| f.package.is_none())
            .all(|f| !f.no_fix)
    );
    // Grype: `fix.state`; a report older than the field says nothing.
    let (_, fixed) = auto("grype/fix_available.json");
    assert!(!fixed[0].no_fix);
    let not_fixed = fixture("grype/fix_available.json")
        .replacen("\"state\": \"fixed\"", "\"state\": \"not-fixed\"", 1)
        .replacen("\"1.2.3\"", "", 1);
    let found = grype::parse("g.json", &not_fixed).unwrap();
    assert_eq!(
        (found[0].no_fix, found[0].fixed_in.as_deref()),
        (true, None)
    );
    let (_, paths) = auto("grype/same_cve_different_paths.json");
    assert_eq!(no_fix(&paths), 2);
    // cargo-audit: a vulnerability with no patched version; an unmaintained crate is not one.
    let (_, rust) = auto("cargo_audit/many_findings.json");
    assert_eq!(no_fix(&rust), 0);
    let unpatched = fixture("cargo_audit/many_findings.json").replacen(
        "\"patched\": [",
        "\"patched\": [], \"was_patched\": [",
        1,
    );
    let (_, found) = parse(None, "a.json", &unpatched).unwrap();
    assert_eq!(no_fix(&found), 1);
    // OSV-Scanner: a `fixed` event for the package, or none.
    let (_, osv) = auto("osv_scanner/some_findings.json");
    let malicious = osv.iter().find(|f| f.advisory.starts_with("MAL-")).unwrap();
    assert_eq!(
        (malicious.no_fix, malicious.fixed_in.as_deref()),
        (true, None)
    );
    let patched = fixture("osv_scanner/some_findings.json").replacen(
        "\"introduced\": \"0\"",
        "\"introduced\": \"0\" }, { \"fixed\": \"1.0.1\"",
        1,
    );
    let (_, found) = parse(None, "o.json", &patched).unwrap();
    let f = found
        .iter()
        .find(|f| f.advisory == malicious.advisory)
        .unwrap();
    assert_eq!((f.no_fix, f.fixed_in.as_deref()), (false, Some("1.0.1")));
}

#[test]
fn grype_matches_with_related_ids_as_aliases() {
    let (_, fix) = auto("grype/fix_available.json");
    assert_eq!(fix[0].advisory, "CVE-2009-3882");
    assert_eq!(fix[0].fixed_in.as_deref(), Some("1.2.3"));
    assert_eq!(fix[0].disclosed, Some(Severity::High));
    // The scanner's purl held a NUL: control characters are dropped.
    assert_eq!(
        fix[0].package.as_deref(),
        Some("pkg:generic/java@17.0.10%2B7-J-ms8m")
    );
    let (_, paths) = auto("grype/same_cve_different_paths.json");
    assert_eq!(paths.len(), 2);
    assert_eq!(paths[0].subject(), paths[1].subject());
    assert_ne!(paths[0].location, paths[1].location);
    let related = r#"{"matches": [{"vulnerability": {"id": "GHSA-q2vm-abcd-1234", "severity": "Unknown",
        "cvss": [{"version": "3.1", "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}]},
        "relatedVulnerabilities": [{"id": "CVE-2024-1234", "description": "tokio: data race"}],
        "artifact": {"name": "tokio", "version": "1.0.0", "type": "rust-crate", "purl": "pkg:cargo/tokio@1.0.0"}}],
        "source": {}, "descriptor": {}}"#;
    let found = grype::parse("g.json", related).unwrap();
    assert_eq!(found[0].aliases, ["CVE-2024-1234"]);
    assert_eq!(found[0].title, "tokio: data race");
    assert_eq!(found[0].disclosed, Some(Severity::High));
    // The same flaw from cargo-audit under its RUSTSEC id with the CVE alias: one identity.
    let audit = ImportedFinding {
        advisory: "RUSTSEC-2024-0001".to_owned(),
        aliases: vec!["CVE-2024-1234".to_owned()],
        ..found[0].clone()
    };
    assert_eq!(audit.subject(), found[0].subject());
    assert!(audit.ids().iter().any(|i| found[0].ids().contains(i)));
}

#[test]
fn bad_files_get_one_line_naming_the_file_and_the_position() {
    let err = |format: Option<Format>, text: &str| {
        parse(format, "scan.json", text).unwrap_err().to_string()
    };
    let trivy = fixture("trivy/scheme_2_many_vulns.json");
    // Truncated.
    assert_eq!(
        err(None, &trivy[..2000]),
        "scan.json: not JSON at line 54 column 22: EOF while parsing a string"
    );
    assert_eq!(
        err(Some(Format::Trivy), &trivy[..2000]),
        "scan.json: not a Trivy report at line 54 column 22 (`Results[0].Vulnerabilities[0].References`): EOF while parsing a string"
    );
    // Malformed.
    assert_eq!(
        err(None, "{\"runs\": [}"),
        "scan.json: not JSON at line 1 column 11: expected value"
    );
    assert_eq!(
        err(None, "not json"),
        "scan.json: not JSON at line 1 column 2: expected ident"
    );
    // Wrong format named.
    assert_eq!(
        err(Some(Format::Grype), &trivy),
        "scan.json: not a Grype report at line 281 column 1: missing field `matches`"
    );
    assert_eq!(
        err(
            Some(Format::Sarif),
            "{\"version\": \"2.0.0\", \"runs\": []}"
        ),
        "scan.json: SARIF version `2.0.0` is not supported: only 2.1.0"
    );
    assert_eq!(
        err(
            Some(Format::Trivy),
            "{\"SchemaVersion\": 3, \"Results\": []}"
        ),
        "scan.json: Trivy schema version 3 is not supported: only 2 (and the older top-level list)"
    );
    // A format that cannot be told, an empty file, an unknown format name.
    assert_eq!(
        err(None, "{\"hello\": 1}"),
        "scan.json: cannot tell which scanner wrote it (not SARIF, Trivy, Grype, OSV-Scanner or cargo-audit JSON); name the format with --format"
    );
    assert_eq!(
        err(None, "  \n"),
        "scan.json: the file is empty; OSV-Scanner writes nothing when it finds nothing: name that with --format osv-scanner"
    );
    assert_eq!(
        Format::from_name("nessus").unwrap_err().to_string(),
        "unknown format `nessus`: expected auto, sarif, trivy, grype, osv-scanner or cargo-audit"
    );
    // Trailing garbage after the document.
    assert_eq!(
        err(Some(Format::Grype), "{\"matches\": []} x"),
        "scan.json: not JSON at line 1 column 17: trailing characters"
    );
    // An unknown CVSS vector where the rating depends on it.
    let bad_vector = r#"{"matches": [{"vulnerability": {"id": "CVE-1", "severity": "Unknown",
        "cvss": [{"vector": "CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}]},
        "artifact": {"name": "a", "version": "1", "purl": "pkg:npm/a@1"}}], "descriptor": {}}"#;
    assert_eq!(
        err(None, bad_vector),
        "scan.json: CVE-1: unknown CVSS vector `CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N`: `AV:Q` is not a value of `AV`"
    );
}

proptest! {
    #[test]
    fn parsing_any_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse(None, "x", &text);
        for f in Format::ALL {
            let _ = parse(Some(f), "x", &text);
        }
    }

    #[test]
    fn mangled_real_files_never_panic(cut in 0usize..16_000, byte in any::<u8>()) {
        for path in [
            "trivy/scheme_2_many_vulns.json",
            "trivy/mixed_schemas.json",
            "sarif/njsscan.sarif",
            "sarif/gitleaks_rule_references.sarif",
            "grype/same_cve_different_paths.json",
        ] {
            let mut bytes = fixture(path).into_bytes();
            let at = cut % bytes.len();
            bytes[at] = byte;
            if let Ok(text) = String::from_utf8(bytes) {
                let _ = parse(None, path, &text);
            }
        }
    }
}
