//! Trivy's JSON report (`trivy image|fs|repo --format json`): schema 2 (an object with
//! `Results`), the older top-level list of results, and `trivy k8s` reports (results per
//! workload). Vulnerabilities become findings on their package; failed misconfiguration checks
//! and secrets become findings on their target.
//!
//! The disclosed rating is Trivy's `Severity` (the rating of its `SeveritySource`); where that
//! is `UNKNOWN`, the CVSS vector of the severity source (else NVD's) is scored; else unrated.
//! Vendor ids (`DSA-4808-1`) are not aliases: one vendor advisory covers many CVEs.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::format::read;
use crate::{ImportedFinding, ParseError, Severity, one_line, rate};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Current {
    schema_version: Option<u32>,
    #[serde(default)]
    results: Vec<TrivyResult>,
    /// `trivy k8s`: workloads with their results.
    #[serde(default)]
    vulnerabilities: Vec<Workload>,
    #[serde(default)]
    misconfigurations: Vec<Workload>,
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
    #[serde(default)]
    results: Vec<TrivyResult>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyResult {
    #[serde(default)]
    target: String,
    #[serde(default, rename = "Type")]
    kind: String,
    #[serde(default)]
    vulnerabilities: Option<Vec<Vulnerability>>,
    #[serde(default)]
    misconfigurations: Option<Vec<Misconfiguration>>,
    #[serde(default)]
    secrets: Option<Vec<Secret>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    #[serde(default)]
    installed_version: String,
    fixed_version: Option<String>,
    pkg_identifier: Option<PkgIdentifier>,
    #[serde(default)]
    severity: String,
    severity_source: Option<String>,
    #[serde(rename = "CVSS", default)]
    cvss: BTreeMap<String, CvssEntry>,
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

/// The purl of a package Trivy names by its result type, when Trivy gave none.
fn purl(kind: &str, name: &str, version: &str) -> String {
    let (ty, namespace) = match kind {
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
        "bundler" | "gemspec" => ("gem", None),
        "composer" | "composer-vendor" => ("composer", None),
        "nuget" | "dotnet-core" | "packages-props" => ("nuget", None),
        other => (other, None),
    };
    let name = if ty == "maven" {
        name.replacen(':', "/", 1)
    } else {
        name.to_owned()
    };
    match namespace {
        Some(ns) => format!("pkg:{ty}/{ns}/{name}@{version}"),
        None => format!("pkg:{ty}/{name}@{version}"),
    }
}

/// The findings in a Trivy report.
pub fn parse(file: &str, text: &str) -> Result<Vec<ImportedFinding>, ParseError> {
    let mut results: Vec<(String, TrivyResult)> = Vec::new();
    if text.trim_start().starts_with('[') {
        let list: Vec<TrivyResult> = read(file, "a Trivy report", text)?;
        results.extend(list.into_iter().map(|r| (String::new(), r)));
    } else {
        let current: Current = read(file, "a Trivy report", text)?;
        {
            if let Some(v) = current.schema_version
                && v != 2
            {
                return Err(ParseError(format!(
                    "{file}: Trivy schema version {v} is not supported: only 2 (and the older top-level list)"
                )));
            }
            results.extend(current.results.into_iter().map(|r| (String::new(), r)));
            for w in current
                .vulnerabilities
                .into_iter()
                .chain(current.misconfigurations)
            {
                let prefix = format!("{}/{}/{}: ", w.namespace, w.kind, w.name);
                results.extend(w.results.into_iter().map(|r| (prefix.clone(), r)));
            }
        }
    }
    let mut out = Vec::new();
    for (prefix, result) in results {
        let target = format!("{prefix}{}", result.target);
        for v in result.vulnerabilities.unwrap_or_default() {
            out.push(vulnerability(file, &result.kind, &target, v)?);
        }
        for m in result.misconfigurations.unwrap_or_default() {
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
                title: one_line(&m.title),
                disclosed: Severity::from_scanner(&m.severity),
                cvss: None,
            });
        }
        for s in result.secrets.unwrap_or_default() {
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
    // The severity source's vector, else NVD's, else any.
    let source = v.severity_source.as_deref().unwrap_or("nvd");
    let vector = [source, "nvd"]
        .iter()
        .filter_map(|s| v.cvss.get(*s))
        .chain(v.cvss.values())
        .find_map(|c| c.v40.clone().or_else(|| c.v3.clone()));
    let disclosed = match Severity::from_scanner(&v.severity) {
        Some(s) => Some(s),
        None => match &vector {
            Some(vector) => Some(
                rate(vector)
                    .map_err(|e| {
                        ParseError(format!("{file}: {} in {target}: {e}", v.vulnerability_id))
                    })?
                    .severity,
            ),
            None => None,
        },
    };
    let package = v
        .pkg_identifier
        .and_then(|p| p.purl)
        .unwrap_or_else(|| purl(kind, &v.pkg_name, &v.installed_version));
    Ok(ImportedFinding {
        advisory: v.vulnerability_id,
        aliases: Vec::new(),
        package: Some(package),
        location: (!target.is_empty()).then(|| target.to_owned()),
        fingerprint: None,
        fixed_in: v.fixed_version.filter(|f| !f.is_empty()),
        title: one_line(
            v.title
                .as_deref()
                .or(v.description.as_deref())
                .unwrap_or_default(),
        ),
        disclosed,
        cvss: vector,
    })
}
