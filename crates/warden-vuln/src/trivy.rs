//! Trivy's JSON report (`trivy image|fs|repo --format json`): schema 2 (an object with
//! `Results`), the older top-level list of results (Trivy before 0.20), and `trivy k8s` reports
//! (results per workload, under `Vulnerabilities` and `Misconfigurations`, or `Resources`).
//! Vulnerabilities become findings on their package; failed misconfiguration checks and
//! secrets become findings on their target. License findings are not vulnerabilities and are
//! left out.
//!
//! Every shape Trivy has written reads, in any mix: results without `Class` or `Type`, `null`
//! where Go wrote an empty list or map (`Results`, `Vulnerabilities`, `CVSS`, …), the package's
//! purl as `PkgIdentifier.PURL` or as the older `Ref` (taken only when it is a purl: for an
//! SBOM it may be a BOM ref), and `Misconfigurations`, `Secrets` and `Licenses` beside
//! `Vulnerabilities`. What is absent stays absent: no purl type is guessed for a result
//! without `Type` (the purl is `pkg:generic/…`), no rating for an unknown `Severity` without a
//! vector. A vulnerability without a `VulnerabilityID` (legacy reports hold such entries) is
//! the finding `trivy:<key>` on its package, the key being the 64-bit FNV-1a hash of its title
//! and description joined by a newline, as 16 lowercase hex digits. Anything else of the wrong
//! type is refused with its position and JSON path.
//!
//! The disclosed rating is Trivy's `Severity` (the rating of its `SeveritySource`); where that
//! is `UNKNOWN`, the CVSS vector of the severity source (else NVD's) is scored; else unrated.
//! Vendor ids (`DSA-4808-1`) are not aliases: one vendor advisory covers many CVEs.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::document::read;
use crate::{ImportedFinding, ParseError, Severity, one_line, rate, text_key};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Current {
    schema_version: Option<u32>,
    results: Option<Vec<TrivyResult>>,
    /// `trivy k8s`: workloads with their vulnerabilities.
    vulnerabilities: Option<Vec<Workload>>,
    /// `trivy k8s`: workloads with their misconfigurations.
    misconfigurations: Option<Vec<Workload>>,
    /// Later `trivy k8s`: every resource with all its results.
    resources: Option<Vec<Workload>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Workload {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    results: Option<Vec<TrivyResult>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyResult {
    #[serde(default)]
    target: String,
    #[serde(default, rename = "Type")]
    kind: String,
    vulnerabilities: Option<Vec<Vulnerability>>,
    misconfigurations: Option<Vec<Misconfiguration>>,
    secrets: Option<Vec<Secret>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: Option<String>,
    #[serde(default)]
    pkg_name: String,
    #[serde(default)]
    installed_version: String,
    fixed_version: Option<String>,
    /// Since Trivy 0.37: `fixed`, `affected`, `will_not_fix`, `fix_deferred`, `end_of_life`,
    /// `under_investigation`, `not_affected` or `unknown`.
    status: Option<String>,
    pkg_identifier: Option<PkgIdentifier>,
    /// Before `PkgIdentifier`: the package's reference in a scanned SBOM, a purl or a BOM ref.
    #[serde(rename = "Ref")]
    reference: Option<String>,
    #[serde(default)]
    severity: String,
    severity_source: Option<String>,
    #[serde(rename = "CVSS")]
    cvss: Option<BTreeMap<String, CvssEntry>>,
    title: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PkgIdentifier {
    #[serde(rename = "PURL")]
    purl: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CvssEntry {
    #[serde(rename = "V40Vector")]
    v40: Option<String>,
    #[serde(rename = "V3Vector")]
    v3: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Misconfiguration {
    #[serde(rename = "ID")]
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Secret {
    #[serde(rename = "RuleID")]
    rule_id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    severity: String,
    start_line: Option<u64>,
}

/// The purl of a package Trivy names by its result type, when Trivy gave none: `pkg:generic`
/// for a result without a type (legacy reports), no `@` without a version, and none without a
/// name.
fn purl(kind: &str, name: &str, version: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let (ty, namespace) = match kind {
        "" => ("generic", None),
        "debian" | "ubuntu" => ("deb", Some(kind)),
        "alpine" | "wolfi" | "chainguard" => ("apk", Some(kind)),
        "redhat" | "centos" | "rocky" | "alma" | "amazon" | "oracle" | "fedora" | "photon"
        | "cbl-mariner" | "azurelinux" | "suse" | "opensuse" | "opensuse.leap" | "sles" => {
            ("rpm", Some(kind))
        }
        "npm" | "yarn" | "pnpm" | "node-pkg" | "bun" => ("npm", None),
        "pip" | "pipenv" | "poetry" | "uv" | "python-pkg" => ("pypi", None),
        "gomod" | "gobinary" => ("golang", None),
        "cargo" | "rustbinary" => ("cargo", None),
        "jar" | "pom" | "gradle" | "sbt" => ("maven", None),
        "bundler" | "gemspec" | "rubygems" => ("gem", None),
        "composer" | "composer-vendor" => ("composer", None),
        "nuget" | "dotnet-core" | "packages-props" => ("nuget", None),
        other => (other, None),
    };
    let name = if ty == "maven" {
        name.replacen(':', "/", 1)
    } else {
        name.to_owned()
    };
    let path = match namespace {
        Some(ns) => format!("pkg:{ty}/{ns}/{name}"),
        None => format!("pkg:{ty}/{name}"),
    };
    Some(if version.is_empty() {
        path
    } else {
        format!("{path}@{version}")
    })
}

/// The findings in a Trivy report.
pub fn parse(file: &str, text: &str) -> Result<Vec<ImportedFinding>, ParseError> {
    let mut results: Vec<(String, TrivyResult)> = Vec::new();
    if text.trim_start().starts_with('[') {
        let list: Vec<TrivyResult> = read(file, "a Trivy report", text)?;
        results.extend(list.into_iter().map(|r| (String::new(), r)));
    } else {
        let current: Current = read(file, "a Trivy report", text)?;
        if let Some(v) = current.schema_version
            && v != 2
        {
            return Err(ParseError(format!(
                "{file}: Trivy schema version {v} is not supported: only 2 (and the older top-level list)"
            )));
        }
        results.extend(
            current
                .results
                .into_iter()
                .flatten()
                .map(|r| (String::new(), r)),
        );
        let workloads = [
            current.vulnerabilities,
            current.misconfigurations,
            current.resources,
        ];
        for w in workloads.into_iter().flatten().flatten() {
            let prefix = if w.namespace.is_empty() {
                format!("{}/{}: ", w.kind, w.name)
            } else {
                format!("{}/{}/{}: ", w.namespace, w.kind, w.name)
            };
            results.extend(w.results.into_iter().flatten().map(|r| (prefix.clone(), r)));
        }
    }
    let mut out = Vec::new();
    for (prefix, result) in results {
        let target = format!("{prefix}{}", result.target);
        for v in result.vulnerabilities.into_iter().flatten() {
            out.push(vulnerability(file, &result.kind, &target, v)?);
        }
        for m in result.misconfigurations.into_iter().flatten() {
            if !m.status.eq_ignore_ascii_case("FAIL") {
                continue;
            }
            out.push(ImportedFinding {
                advisory: m.id,
                aliases: Vec::new(),
                package: None,
                location: Some(target.clone()),
                fingerprint: None,
                fixed_in: None,
                no_fix: false,
                title: one_line(&m.title),
                disclosed: Severity::from_scanner(&m.severity),
                cvss: None,
            });
        }
        for s in result.secrets.into_iter().flatten() {
            let location = match s.start_line {
                Some(line) => format!("{target}:{line}"),
                None => target.clone(),
            };
            out.push(ImportedFinding {
                advisory: s.rule_id,
                aliases: Vec::new(),
                package: None,
                location: Some(location),
                fingerprint: None,
                fixed_in: None,
                no_fix: false,
                title: one_line(&s.title),
                disclosed: Severity::from_scanner(&s.severity),
                cvss: None,
            });
        }
    }
    Ok(out)
}

fn vulnerability(
    file: &str,
    kind: &str,
    target: &str,
    v: Vulnerability,
) -> Result<ImportedFinding, ParseError> {
    let title = v.title.as_deref().filter(|t| !t.trim().is_empty());
    let description = v.description.as_deref().filter(|d| !d.trim().is_empty());
    let id = v
        .vulnerability_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let advisory = match id {
        Some(id) => id.to_owned(),
        None => format!(
            "trivy:{}",
            text_key(&format!(
                "{}\n{}",
                title.unwrap_or_default(),
                description.unwrap_or_default()
            ))
        ),
    };
    // The severity source's vector, else NVD's, else any; an empty vector is none.
    let cvss = v.cvss.unwrap_or_default();
    let source = v.severity_source.as_deref().unwrap_or("nvd");
    let vector = [source, "nvd"]
        .iter()
        .filter_map(|s| cvss.get(*s))
        .chain(cvss.values())
        .find_map(|c| {
            [&c.v40, &c.v3]
                .into_iter()
                .find_map(|x| x.as_deref().map(str::trim).filter(|x| !x.is_empty()))
        })
        .map(str::to_owned);
    let disclosed = match Severity::from_scanner(&v.severity) {
        Some(s) => Some(s),
        None => match &vector {
            Some(vector) => Some(
                rate(vector)
                    .map_err(|e| ParseError(format!("{file}: {advisory} in {target}: {e}")))?
                    .severity,
            ),
            None => None,
        },
    };
    let trivy_purl = v
        .pkg_identifier
        .and_then(|p| p.purl)
        .or(v.reference.filter(|r| r.starts_with("pkg:")))
        .filter(|p| !p.trim().is_empty());
    let package = trivy_purl.or_else(|| purl(kind, &v.pkg_name, &v.installed_version));
    let title = match title.or(description) {
        Some(text) => one_line(text),
        None if id.is_some() => String::new(),
        None => one_line(&format!(
            "vulnerability without an id in {} {}",
            v.pkg_name, v.installed_version
        )),
    };
    let fixed_in = v.fixed_version.filter(|f| !f.trim().is_empty());
    Ok(ImportedFinding {
        advisory,
        aliases: Vec::new(),
        package,
        location: (!target.is_empty()).then(|| target.to_owned()),
        fingerprint: None,
        no_fix: fixed_in.is_none()
            && v.status.as_deref().is_none_or(|s| {
                matches!(
                    s,
                    "affected" | "will_not_fix" | "fix_deferred" | "end_of_life"
                )
            }),
        fixed_in,
        title,
        disclosed,
        cvss: vector,
    })
}
