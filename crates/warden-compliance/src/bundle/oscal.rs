//! The results as NIST OSCAL 1.1 `assessment-results` JSON: one result for the period, an
//! observation per test, a finding per control, and back-matter resources binding the
//! bundle's files by SHA-256. Deterministic: every UUID is derived from what it names, and
//! no time but the period's appears, so the same period gives the same bytes.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::Manifest;
use crate::catalog::Framework;
use crate::report::TestResult;
use crate::test_id::TestId;

/// The OSCAL version the document declares.
pub const OSCAL_VERSION: &str = "1.1.2";

/// A name-based UUID (version 5 layout over SHA-256 of the name).
fn uuid(name: &str) -> String {
    let h = Sha256::digest(format!("warden-compliance:{name}").as_bytes());
    let mut b = [0u8; 16];
    for (out, byte) in b.iter_mut().zip(h.iter()) {
        *out = *byte;
    }
    if let Some(v) = b.get_mut(6) {
        *v = (*v & 0x0f) | 0x50;
    }
    if let Some(v) = b.get_mut(8) {
        *v = (*v & 0x3f) | 0x80;
    }
    let mut out = String::with_capacity(36);
    let mut bytes = b.iter();
    for (i, n) in [4usize, 2, 2, 2, 6].into_iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        for byte in bytes.by_ref().take(n) {
            out.push_str(&format!("{byte:02x}"));
        }
    }
    out
}

/// A control reference as an OSCAL token (`CC6.1` → `cc6.1`, `164.312(a)(1)` →
/// `hipaa-164.312.a.1`).
fn control_token(framework: Framework, id: &str) -> String {
    let dotted: String = id.to_ascii_lowercase().replace('(', ".").replace(')', "");
    match framework {
        Framework::Soc2 => dotted,
        Framework::Hipaa => format!("hipaa-{dotted}"),
    }
}

/// The OSCAL document, pretty-printed.
pub(crate) fn assessment_results(
    manifest: &Manifest,
    results: &[TestResult],
    files: &BTreeMap<String, String>,
) -> String {
    let framework = manifest.framework;
    let catalog = framework.catalog();
    let from = manifest.period.from().rfc3339_millis();
    let to = manifest.period.to().rfc3339_millis();
    let scope = format!("{}:{}:{from}:{to}", manifest.origin, framework);
    let by_id: BTreeMap<TestId, &TestResult> = results.iter().map(|r| (r.id, r)).collect();
    let resource = |file: &str| uuid(&format!("{scope}:file:{file}"));
    let catalog_resource = uuid(&format!("{scope}:catalog"));

    let observations: Vec<Value> = results
        .iter()
        .map(|r| {
            let verdict = if r.passed() { "passed" } else { "failed" };
            json!({
                "uuid": uuid(&format!("{scope}:observation:{}", r.id)),
                "title": format!("Automated test `{}`", r.id),
                "description": format!(
                    "{}. Population {}, exceptions {}, pending {}: {verdict}.",
                    r.id.title(), r.population, r.exception_count, r.pending
                ),
                "methods": ["TEST"],
                "types": ["control-objective"],
                "collected": to,
                "relevant-evidence": [{
                    "href": format!("#{}", resource(&format!("population/{}.csv", r.id))),
                    "description": format!("The population of `{}` with each exception and the audit events it rests on.", r.id),
                }],
            })
        })
        .collect();

    let findings: Vec<Value> = catalog
        .controls
        .iter()
        .map(|c| {
            let tested: Vec<&&TestResult> = c.tests.iter().filter_map(|t| by_id.get(t)).collect();
            let state = if !tested.is_empty() && tested.iter().all(|r| r.passed()) {
                "satisfied"
            } else {
                "not-satisfied"
            };
            let how = if tested.is_empty() {
                format!("Warden has no automated test for this control. {}", c.not_evidenced)
            } else {
                let list: Vec<String> = tested
                    .iter()
                    .map(|r| format!("`{}` {}", r.id, if r.passed() { "passed" } else { "failed" }))
                    .collect();
                format!("{}. Not evidenced by Warden: {}", list.join(", "), c.not_evidenced)
            };
            let mut finding = json!({
                "uuid": uuid(&format!("{scope}:finding:{}", c.id)),
                "title": format!("{} {}", c.id, c.title),
                "description": how,
                "target": {
                    "type": "objective-id",
                    "target-id": format!("{}_obj", control_token(framework, &c.id)),
                    "status": {"state": state},
                },
            });
            if !tested.is_empty()
                && let Some(map) = finding.as_object_mut()
            {
                map.insert(
                    "related-observations".to_owned(),
                    Value::Array(
                        tested
                            .iter()
                            .map(|r| json!({"observation-uuid": uuid(&format!("{scope}:observation:{}", r.id))}))
                            .collect(),
                    ),
                );
            }
            finding
        })
        .collect();

    let mut resources = vec![json!({
        "uuid": catalog_resource,
        "title": format!("{} catalog {}, as shipped with Warden", catalog.title, catalog.version),
        "description": "The controls, the automated tests that evidence each, and what Warden cannot evidence.",
    })];
    resources.extend(files.iter().map(|(file, sha256)| {
        json!({
            "uuid": resource(file),
            "title": file,
            "rlinks": [{
                "href": file,
                "hashes": [{"algorithm": "SHA-256", "value": sha256}],
            }],
        })
    }));

    let mut document = json!({
        "assessment-results": {
            "uuid": uuid(&format!("{scope}:assessment-results")),
            "metadata": {
                "title": format!("{} — Warden automated assessment, {from} to {to}", catalog.title),
                "last-modified": to,
                "version": catalog.version,
                "oscal-version": OSCAL_VERSION,
            },
            "import-ap": {"href": format!("#{catalog_resource}")},
            "results": [{
                "uuid": uuid(&format!("{scope}:result")),
                "title": format!("{} controls tested from the audit log of `{}`", framework, manifest.origin),
                "description": "Each automated test computed by Warden from its tamper-evident audit log over the period; the bundle's events and proofs let the results be recomputed offline.",
                "start": from,
                "end": to,
                "reviewed-controls": {
                    "control-selections": [{
                        "include-controls": catalog
                            .controls
                            .iter()
                            .map(|c| json!({"control-id": control_token(framework, &c.id)}))
                            .collect::<Vec<_>>(),
                    }],
                },
                "observations": observations,
                "findings": findings,
            }],
            "back-matter": {"resources": resources},
        }
    });
    // Keys in one order whatever serde_json's features in the binary that writes or checks
    // it (`preserve_order` keeps the order written above; without it, maps are sorted).
    document.sort_all_objects();
    serde_json::to_string_pretty(&document).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_version_5_and_control_ids_are_tokens() {
        let u = uuid("x");
        assert_eq!(u, uuid("x"));
        assert_eq!(u.len(), 36);
        assert_eq!(u.get(14..15), Some("5"));
        assert!(matches!(u.get(19..20), Some("8" | "9" | "a" | "b")));
        assert_eq!(control_token(Framework::Soc2, "CC6.1"), "cc6.1");
        assert_eq!(
            control_token(Framework::Hipaa, "164.308(a)(1)(ii)(D)"),
            "hipaa-164.308.a.1.ii.d"
        );
    }
}
