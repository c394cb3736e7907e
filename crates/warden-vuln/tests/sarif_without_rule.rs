//! SARIF results that name no rule by `ruleId` (gitleaks before 8 writes none; others point at
//! their rule only by `rule.id`, `rule.index` or `ruleIndex`): each is imported, none is
//! dropped, and none refuses the file. One that names no rule at all is the finding
//! `<driver>/sarif:<FNV-1a 64 of its message text>` at its place, the same on every import.
//! Fixtures are hand-written in the shape of gitleaks 7's and 8's SARIF writers.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test"
)]

use proptest::prelude::*;
use warden_vuln::{Format, ImportedFinding, parse, sarif};

fn fixture(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn import(path: &str) -> Vec<ImportedFinding> {
    let (format, found) = parse(None, path, &fixture(path)).unwrap();
    assert_eq!(format, Format::Sarif, "{path}");
    found
}

/// What Warden keys a finding by: what it is on, and every id it is known by.
fn identities(found: &[ImportedFinding]) -> Vec<(String, Vec<String>)> {
    found.iter().map(|f| (f.subject(), f.ids())).collect()
}

fn advisories(found: &[ImportedFinding]) -> Vec<&str> {
    found.iter().map(|f| f.advisory.as_str()).collect()
}

fn locations(found: &[ImportedFinding]) -> Vec<Option<&str>> {
    found.iter().map(|f| f.location.as_deref()).collect()
}

#[test]
fn gitleaks_7_results_without_a_rule_are_keyed_by_their_message() {
    let found = import("sarif/gitleaks_v7.sarif");

    // FNV-1a 64 of "AWS Access Key secret detected" and of "Generic Credential secret detected".
    let aws = "Gitleaks/sarif:7aa77e8184316ef9";
    let generic = "Gitleaks/sarif:fbc38c81e7059e69";
    assert_eq!(advisories(&found), [aws, aws, aws, generic]);
    assert_eq!(
        locations(&found),
        [
            Some("deploy/env.sh:3"),
            Some("deploy/env.sh:3"),
            Some("config/settings.py:12"),
            Some("config/settings.py:40"),
        ]
    );
    assert_eq!(found[0].title, "AWS Access Key secret detected");
    // gitleaks rates nothing: unrated, for triage.
    assert!(found.iter().all(|f| f.disclosed.is_none()));
    // The same leak seen in two commits is one finding; the same rule elsewhere is another.
    let distinct: std::collections::BTreeSet<_> = identities(&found).into_iter().collect();
    assert_eq!(distinct.len(), 3);
    // Re-importing the same file gives the same identities.
    assert_eq!(
        identities(&import("sarif/gitleaks_v7.sarif")),
        identities(&found)
    );
}

#[test]
fn a_results_rule_is_found_by_id_reference_or_index() {
    let found = import("sarif/gitleaks_rule_references.sarif");

    assert_eq!(
        advisories(&found),
        [
            // ruleId.
            "gitleaks/aws-access-token",
            // rule.id.
            "gitleaks/generic-api-key",
            // rule.index into the driver's rules.
            "gitleaks/private-key",
            // ruleIndex into the driver's rules.
            "gitleaks/aws-access-token",
            // rule.index into the extension rule.toolComponent names.
            "gitleaks/acme-internal-token",
            // `"ruleId": ""` and `"ruleIndex": -1` name nothing: keyed by the message.
            "gitleaks/sarif:87e86d882029ef31",
            // rule.index past the end of the rules: keyed by the message.
            "gitleaks/sarif:95a5d573a0b74f15",
            // No rule and no message: the key of the empty text, told apart by the place.
            "gitleaks/sarif:cbf29ce484222325",
        ]
    );
    assert_eq!(
        locations(&found),
        [
            Some("src/settings.py:5"),
            Some("src/client.py:17"),
            Some("deploy/id_rsa:1"),
            Some("deploy/env.sh:3"),
            Some("src/acme.py:8"),
            Some("src/legacy.py:21"),
            Some("src/tokens.py:2"),
            Some("src/tokens.py:30"),
        ]
    );
    // gitleaks's partial fingerprints (commit, author, …) do not tell results apart.
    assert_eq!(found[7].subject(), "loc:src/tokens.py:30");
    assert_eq!(
        found[6].title,
        "custom-token has detected secret for file src/tokens.py."
    );
    // Without a message, the title is the advisory.
    assert_eq!(found[7].title, "gitleaks/sarif:cbf29ce484222325");
    assert_eq!(
        identities(&import("sarif/gitleaks_rule_references.sarif")),
        identities(&found)
    );
}

#[test]
fn the_key_is_the_message_text_else_its_markdown_else_its_id() {
    let log = |result: &str| {
        format!(
            r#"{{"version": "2.1.0", "runs": [{{"tool": {{"driver": {{"name": "x"}}}}, "results": [{result}]}}]}}"#
        )
    };
    let advisory = |result: &str| {
        let found = sarif::parse("r.sarif", &log(result)).unwrap();
        assert_eq!(found.len(), 1, "{result}");
        found[0].advisory.clone()
    };
    // FNV-1a 64 of "m".
    assert_eq!(
        advisory(r#"{"message": {"text": "m"}}"#),
        "x/sarif:af63e04c8601f358"
    );
    // Surrounding white space is not part of the text.
    assert_eq!(
        advisory(r#"{"message": {"text": "  m\n"}}"#),
        "x/sarif:af63e04c8601f358"
    );
    assert_eq!(
        advisory(r#"{"message": {"markdown": "m"}}"#),
        "x/sarif:af63e04c8601f358"
    );
    assert_eq!(
        advisory(r#"{"message": {"id": "m", "arguments": ["a"]}}"#),
        "x/sarif:af63e04c8601f358"
    );
    assert_eq!(advisory("{}"), "x/sarif:cbf29ce484222325");
    // A rule without an id names nothing either.
    let no_rule_id = r#"{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x",
        "rules": [{"shortDescription": {"text": "d"}}]}}, "results": [{"ruleIndex": 0, "message": {"text": "m"}}]}]}"#;
    assert_eq!(
        sarif::parse("r.sarif", no_rule_id).unwrap()[0].advisory,
        "x/sarif:af63e04c8601f358"
    );
}

proptest! {
    #[test]
    fn any_result_without_a_rule_imports_under_a_stable_key(
        text in "\\PC{0,200}",
        line in 1u64..100_000,
    ) {
        let log = serde_json::json!({
            "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "gitleaks", "rules": [{"id": "r"}]}},
                "results": [{"message": {"text": text}, "rule": {"index": 5},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"},
                        "region": {"startLine": line}}}]}]}],
        })
        .to_string();
        let first = sarif::parse("p.sarif", &log).unwrap();
        prop_assert_eq!(first.len(), 1);
        let key = first[0].advisory.strip_prefix("gitleaks/sarif:").unwrap_or_default();
        prop_assert!(key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{}", first[0].advisory);
        prop_assert_eq!(first[0].location.clone(), Some(format!("a.py:{line}")));
        let again = sarif::parse("p.sarif", &log).unwrap();
        prop_assert_eq!(identities(&again), identities(&first));
    }
}
