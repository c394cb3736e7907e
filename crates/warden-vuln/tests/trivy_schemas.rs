//! Trivy reports mixing its legacy and current shapes: results without `Class` or `Type`,
//! `null` lists and maps, the older `Ref` purl, vulnerabilities without an id, misconfigurations,
//! secrets and licenses beside vulnerabilities, and `trivy k8s` `Resources`. Each imports, with
//! what is absent left absent; input of the wrong type is still refused with its position and
//! JSON path. Fixtures are hand-written in the shapes Trivy's versions write (the legacy list
//! after DefectDojo's `legacy_trivy_mix.json`).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test"
)]

use proptest::prelude::*;
use warden_vuln::{Format, ImportedFinding, Severity, parse, trivy};

fn fixture(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn import(path: &str) -> Vec<ImportedFinding> {
    let (format, found) = parse(None, path, &fixture(path)).unwrap();
    assert_eq!(format, Format::Trivy, "{path}");
    found
}

/// What Warden keys a finding by: what it is on, and every id it is known by.
fn identities(found: &[ImportedFinding]) -> Vec<(String, Vec<String>)> {
    found.iter().map(|f| (f.subject(), f.ids())).collect()
}

fn advisories(found: &[ImportedFinding]) -> Vec<&str> {
    found.iter().map(|f| f.advisory.as_str()).collect()
}

fn packages(found: &[ImportedFinding]) -> Vec<Option<&str>> {
    found.iter().map(|f| f.package.as_deref()).collect()
}

fn locations(found: &[ImportedFinding]) -> Vec<Option<&str>> {
    found.iter().map(|f| f.location.as_deref()).collect()
}

#[test]
fn a_schema_2_report_with_legacy_entries_imports_every_finding() {
    let found = import("trivy/mixed_schemas.json");

    assert_eq!(
        advisories(&found),
        [
            "CVE-2023-38545",
            "CVE-2018-16487",
            "CVE-2023-37920",
            "CVE-2023-32681",
            "CVE-2014-9130",
            // No VulnerabilityID, title or description: FNV-1a 64 of "\n".
            "trivy:af63c74c8601c8dd",
            // The failed check; the passed one is not a finding.
            "DS002",
            "github-pat",
        ]
    );
    assert_eq!(
        packages(&found),
        [
            // PkgIdentifier.PURL as Trivy wrote it.
            Some("pkg:deb/debian/curl@7.74.0-1.3%2Bdeb11u7?arch=amd64&distro=debian-11.6"),
            // No Class, no PkgIdentifier: from the result's Type.
            Some("pkg:npm/lodash@4.17.4"),
            // The older `Ref` when it is a purl.
            Some("pkg:pypi/certifi@2022.5.18.1"),
            // A `Ref` that is a BOM ref is no purl: from the Type.
            Some("pkg:pypi/requests@2.25.1"),
            // No Type: the ecosystem is not guessed.
            Some("pkg:generic/libyaml@0.1.4"),
            // No version: none in the purl.
            Some("pkg:composer/simplito/elliptic-php"),
            None,
            None,
        ]
    );
    assert_eq!(
        locations(&found),
        [
            Some("registry.example.com/shop/api:1.4.2 (debian 11.6)"),
            Some("app/package-lock.json"),
            Some("sbom/requirements.txt"),
            Some("sbom/requirements.txt"),
            Some("vendor/libyaml"),
            Some("php/composer.lock"),
            Some("Dockerfile"),
            Some("Dockerfile:24"),
        ]
    );
    assert_eq!(
        found.iter().map(|f| f.disclosed).collect::<Vec<_>>(),
        [
            Some(Severity::High),
            Some(Severity::Medium),
            // UNKNOWN: the severity source's (GHSA's) vector rates it, not NVD's.
            Some(Severity::High),
            // `"CVSS": null` is no vector.
            Some(Severity::Medium),
            // UNKNOWN with only a CVSS v2 vector and an empty v3 one: unrated.
            None,
            None,
            Some(Severity::High),
            Some(Severity::Critical),
        ]
    );
    assert_eq!(
        found[2].cvss.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N")
    );
    assert_eq!(found[4].cvss, None);
    assert_eq!(
        found[5].title,
        "vulnerability without an id in simplito/elliptic-php"
    );
    assert_eq!(
        identities(&import("trivy/mixed_schemas.json")),
        identities(&found)
    );
}

#[test]
fn a_legacy_list_with_current_entries_imports_every_finding() {
    let found = import("trivy/legacy_list_mixed.json");

    assert_eq!(
        advisories(&found),
        [
            "trivy:af63c74c8601c8dd",
            "CVE-2018-16487",
            "CVE-2018-16840",
            "CVE-2020-8164"
        ]
    );
    assert_eq!(
        packages(&found),
        [
            Some("pkg:composer/simplito/elliptic-php"),
            Some("pkg:npm/lodash@4.17.4"),
            Some("pkg:apk/alpine/curl@7.61.0-r0?arch=x86_64&distro=3.7.1"),
            // Legacy Trivy's `rubygems` type is the `gem` purl type.
            Some("pkg:gem/actionpack@5.2.3"),
        ]
    );
    assert_eq!(
        locations(&found),
        [
            Some("php-app/composer.lock"),
            Some("node-app/package-lock.json"),
            Some("trivy-ci-test (alpine 3.7.1)"),
            Some("ruby-app/Gemfile.lock"),
        ]
    );
    // The same id-less entry in another report is the same advisory on the same package.
    let mixed = import("trivy/mixed_schemas.json");
    assert_eq!(identities(&found)[0], identities(&mixed)[5]);
    assert_eq!(
        identities(&import("trivy/legacy_list_mixed.json")),
        identities(&found)
    );
}

#[test]
fn kubernetes_resources_are_reported_per_resource() {
    let found = import("trivy/k8s_resources.json");

    assert_eq!(advisories(&found), ["KSV113", "KSV001", "CVE-2020-27350"]);
    assert_eq!(
        locations(&found),
        [
            // A cluster-scoped resource has no namespace.
            Some(
                "ClusterRole/system:controller:bootstrap-signer: ClusterRole/system:controller:bootstrap-signer"
            ),
            Some("default/Deployment/redis-follower: Deployment/redis-follower"),
            Some(
                "default/Deployment/redis-follower: gcr.io/google_samples/gb-redis-follower:v2 (debian 10.4)"
            ),
        ]
    );
    assert_eq!(
        found[2].package.as_deref(),
        Some("pkg:deb/debian/apt@1.8.2.1")
    );
    assert_eq!(
        identities(&import("trivy/k8s_resources.json")),
        identities(&found)
    );
}

#[test]
fn wrong_types_are_refused_with_the_position_and_path() {
    let err = |text: &str| {
        parse(Some(Format::Trivy), "scan.json", text)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(r#"{"SchemaVersion": 2, "Results": [{"Target": "a", "Vulnerabilities": {}}]}"#),
        "scan.json: not a Trivy report at line 1 column 68 (`Results[0].Vulnerabilities`): invalid type: map, expected a sequence"
    );
    assert_eq!(
        err(
            r#"{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"VulnerabilityID": 7, "PkgName": "a"}]}]}"#
        ),
        "scan.json: not a Trivy report at line 1 column 75 (`Results[0].Vulnerabilities[0].VulnerabilityID`): invalid type: integer `7`, expected a string"
    );
    assert_eq!(
        err(r#"[{"Target": "a", "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "CVSS": []}]}]"#),
        "scan.json: not a Trivy report at line 1 column 74 (`[0].Vulnerabilities[0].CVSS`): invalid type: sequence, expected a map"
    );
    assert_eq!(
        err(r#"{"SchemaVersion": 2, "Results": [{"Misconfigurations": [{"Status": "FAIL"}]}]}"#),
        "scan.json: not a Trivy report at line 1 column 74 (`Results[0].Misconfigurations[0]`): missing field `ID`"
    );
    assert_eq!(
        err(r#"{"ClusterName": "c", "Resources": [{"Kind": "Pod", "Results": 1}]}"#),
        "scan.json: not a Trivy report at line 1 column 63 (`Resources[0].Results`): invalid type: integer `1`, expected a sequence"
    );
    // Empty ids are still no ids where Trivy always writes one.
    assert_eq!(
        err(r#"{"SchemaVersion": 2, "Results": [{"Secrets": [{"RuleID": " "}]}]}"#),
        "scan.json: finding 1 has no advisory or rule id"
    );
}

/// A JSON member in one of three forms: absent, `null`, or a value.
fn member(name: &str, form: u8, value: &str) -> String {
    match form {
        0 => String::new(),
        1 => format!(r#""{name}": null,"#),
        _ => format!(r#""{name}": {value},"#),
    }
}

proptest! {
    #[test]
    fn every_optional_field_may_be_absent_or_null(forms in prop::collection::vec(0u8..3, 9)) {
        let f = |at: usize, name: &str, value: &str| member(name, forms.get(at).copied().unwrap_or(0), value);
        let vulnerability = format!(
            r#"{{{}{}{}{}{}{}"VulnerabilityID": "CVE-2024-0001"}}"#,
            f(0, "PkgIdentifier", r#"{"PURL": "pkg:npm/a@1", "UID": "u"}"#),
            f(1, "Ref", r#""urn:uuid:1""#),
            f(2, "CVSS", r#"{"nvd": {"V2Vector": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}}"#),
            f(3, "FixedVersion", r#""2""#),
            f(4, "Title", r#""t""#),
            f(5, "SeveritySource", r#""nvd""#),
        );
        let text = format!(
            r#"{{"SchemaVersion": 2, "Results": [{{{}{}{}"Vulnerabilities": [{vulnerability}]}}]}}"#,
            f(6, "Class", r#""lang-pkgs""#),
            f(7, "Secrets", "[]"),
            f(8, "Licenses", r#"[{"Name": "MIT"}]"#),
        );
        let first = trivy::parse("p.json", &text).unwrap();
        prop_assert_eq!(first.len(), 1);
        prop_assert_eq!(first[0].advisory.as_str(), "CVE-2024-0001");
        let again = trivy::parse("p.json", &text).unwrap();
        prop_assert_eq!(identities(&again), identities(&first));
    }
}
