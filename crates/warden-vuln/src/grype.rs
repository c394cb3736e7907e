//! Grype's JSON report (`grype -o json`): each match becomes a finding on the artifact's purl,
//! with the related vulnerabilities (a GHSA's CVE, say) as aliases, so the same flaw found by
//! Trivy, OSV-Scanner or cargo-audit is the same finding.
//!
//! The disclosed rating is Grype's `severity` word; where that is `Unknown`, the first CVSS
//! vector (the vulnerability's own, else a related one's) is scored; else unrated.

use serde::Deserialize;

use crate::document::read;
use crate::{ImportedFinding, ParseError, Severity, one_line, rate};

#[derive(Debug, Deserialize)]
struct Report {
    matches: Vec<Match>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    vulnerability: Vulnerability,
    #[serde(default)]
    related_vulnerabilities: Vec<Vulnerability>,
    artifact: Artifact,
}

#[derive(Debug, Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    cvss: Vec<Cvss>,
    fix: Option<Fix>,
}

#[derive(Debug, Deserialize)]
struct Cvss {
    #[serde(default)]
    vector: String,
}

#[derive(Debug, Deserialize)]
struct Fix {
    #[serde(default)]
    versions: Vec<String>,
    /// `fixed`, `not-fixed`, `wont-fix` or `unknown`.
    #[serde(default)]
    state: String,
}

#[derive(Debug, Deserialize)]
struct Artifact {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    purl: String,
    #[serde(default)]
    locations: Vec<Location>,
}

#[derive(Debug, Deserialize)]
struct Location {
    #[serde(default)]
    path: String,
}

/// The findings in a Grype report.
pub fn parse(file: &str, text: &str) -> Result<Vec<ImportedFinding>, ParseError> {
    let report: Report = read(file, "a Grype report", text)?;
    let mut out = Vec::with_capacity(report.matches.len());
    for m in report.matches {
        let v = m.vulnerability;
        let vector = std::iter::once(&v)
            .chain(&m.related_vulnerabilities)
            .flat_map(|r| &r.cvss)
            .map(|c| c.vector.as_str())
            .find(|vector| vector.starts_with("CVSS:3") || vector.starts_with("CVSS:4"))
            .map(str::to_owned);
        let disclosed = match Severity::from_scanner(&v.severity) {
            Some(s) => Some(s),
            None => match &vector {
                Some(vector) => Some(
                    rate(vector)
                        .map_err(|e| ParseError(format!("{file}: {}: {e}", v.id)))?
                        .severity,
                ),
                None => None,
            },
        };
        let a = m.artifact;
        let package = if a.purl.is_empty() {
            format!(
                "pkg:{}/{}@{}",
                a.kind.to_ascii_lowercase(),
                a.name,
                a.version
            )
        } else {
            a.purl
        };
        let description = if v.description.is_empty() {
            m.related_vulnerabilities
                .iter()
                .map(|r| r.description.as_str())
                .find(|d| !d.is_empty())
                .unwrap_or_default()
        } else {
            v.description.as_str()
        };
        out.push(ImportedFinding {
            title: one_line(description),
            aliases: m
                .related_vulnerabilities
                .iter()
                .map(|r| r.id.clone())
                .filter(|id| *id != v.id)
                .collect(),
            advisory: v.id,
            package: Some(package),
            location: a
                .locations
                .into_iter()
                .map(|l| l.path)
                .find(|p| !p.is_empty()),
            fingerprint: None,
            no_fix: v.fix.as_ref().is_some_and(|f| {
                f.versions.is_empty() && matches!(f.state.as_str(), "not-fixed" | "wont-fix")
            }),
            fixed_in: v.fix.and_then(|f| f.versions.into_iter().next()),
            disclosed,
            cvss: vector,
        });
    }
    Ok(out)
}
