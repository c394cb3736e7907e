//! OSV-Scanner's JSON report (`osv-scanner --format json`): each vulnerability of each package
//! becomes a finding on the package's purl. The disclosed rating comes from a CVSS v3 vector
//! in `severity`, else the database's own word (GHSA's `database_specific.severity`), else
//! none: unrated. An empty file is a scan that found nothing (OSV-Scanner writes nothing then).

use serde::Deserialize;

use crate::document::read;
use crate::{ImportedFinding, ParseError, Severity, one_line, rate};

#[derive(Debug, Deserialize)]
struct Report {
    #[serde(default)]
    results: Vec<Source>,
}

#[derive(Debug, Deserialize)]
struct Source {
    #[serde(default)]
    packages: Vec<Affected>,
}

#[derive(Debug, Deserialize)]
struct Affected {
    package: Package,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    ecosystem: String,
}

#[derive(Debug, Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    severity: Vec<Rating>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
    /// What the advisory says is affected, and from which version it is fixed. `None` when
    /// the report leaves it out: then nothing is known of a fix.
    affected: Option<Vec<AdvisoryRange>>,
}

#[derive(Debug, Deserialize)]
struct AdvisoryRange {
    package: Option<AdvisoryPackage>,
    #[serde(default)]
    ranges: Vec<Range>,
}

#[derive(Debug, Deserialize)]
struct AdvisoryPackage {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct Range {
    #[serde(default)]
    events: Vec<RangeEvent>,
}

#[derive(Debug, Deserialize)]
struct RangeEvent {
    fixed: Option<String>,
}

/// The fix an advisory gives for a package: `Some(Some(version))` a fixed version,
/// `Some(None)` none published, `None` the report does not say.
fn fix_for(affected: Option<&[AdvisoryRange]>, package: &str) -> Option<Option<String>> {
    let affected = affected?;
    let fixed = affected
        .iter()
        .filter(|a| a.package.as_ref().is_none_or(|p| p.name == package))
        .flat_map(|a| &a.ranges)
        .flat_map(|r| &r.events)
        .find_map(|e| e.fixed.clone().filter(|v| !v.trim().is_empty()));
    Some(fixed)
}

#[derive(Debug, Deserialize)]
struct Rating {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

/// The purl type of an OSV ecosystem.
fn purl_type(ecosystem: &str) -> String {
    match ecosystem {
        "crates.io" => "cargo".to_owned(),
        "PyPI" => "pypi".to_owned(),
        "Go" => "golang".to_owned(),
        "RubyGems" => "gem".to_owned(),
        "Packagist" => "composer".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

/// The findings in an OSV-Scanner report.
pub fn parse(file: &str, text: &str) -> Result<Vec<ImportedFinding>, ParseError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let report: Report = read(file, "an OSV-Scanner report", text)?;
    let mut out = Vec::new();
    for affected in report.results.into_iter().flat_map(|s| s.packages) {
        let p = &affected.package;
        let package = format!("pkg:{}/{}@{}", purl_type(&p.ecosystem), p.name, p.version);
        for v in affected.vulnerabilities {
            let vector = v
                .severity
                .iter()
                .find(|r| r.kind == "CVSS_V4")
                .or_else(|| v.severity.iter().find(|r| r.kind == "CVSS_V3"))
                .map(|r| r.score.clone());
            let disclosed = match &vector {
                Some(vector) => Some(
                    rate(vector)
                        .map_err(|e| ParseError(format!("{file}: {}: {e}", v.id)))?
                        .severity,
                ),
                None => v
                    .database_specific
                    .as_ref()
                    .and_then(|d| d.get("severity"))
                    .and_then(serde_json::Value::as_str)
                    .and_then(Severity::from_scanner),
            };
            let fix = fix_for(v.affected.as_deref(), &p.name);
            out.push(ImportedFinding {
                advisory: v.id,
                aliases: v.aliases,
                package: Some(package.clone()),
                location: None,
                fingerprint: None,
                no_fix: matches!(fix, Some(None)),
                fixed_in: fix.flatten(),
                title: one_line(&v.summary),
                disclosed,
                cvss: vector,
            });
        }
    }
    Ok(out)
}
