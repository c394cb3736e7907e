//! cargo-audit's JSON report (`cargo audit --json`): each vulnerability becomes a finding on
//! its package (`pkg:cargo/NAME@VERSION`); an advisory's CVSS vector gives the disclosed
//! rating; RustSec's informational advisories (unmaintained, unsound) are Informational; an
//! advisory with neither is unrated, for triage (not High, as some trackers default it).

use serde::Deserialize;

use crate::document::read;
use crate::{ImportedFinding, ParseError, Severity, one_line, rate};

#[derive(Debug, Deserialize)]
struct Report {
    vulnerabilities: Vulnerabilities,
    #[serde(default)]
    warnings: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Vulnerabilities {
    list: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Entry {
    advisory: Option<Advisory>,
    package: Package,
    versions: Option<Versions>,
}

#[derive(Debug, Deserialize)]
struct Versions {
    #[serde(default)]
    patched: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Advisory {
    id: String,
    title: String,
    #[serde(default)]
    aliases: Vec<String>,
    cvss: Option<String>,
    informational: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    version: String,
}

/// The findings in a cargo-audit report: vulnerabilities, and warnings that carry an
/// advisory (unmaintained, unsound, yanked crates with advisories).
pub fn parse(file: &str, text: &str) -> Result<Vec<ImportedFinding>, ParseError> {
    let report: Report = read(file, "a cargo-audit report", text)?;
    let mut entries = report.vulnerabilities.list;
    for (kind, list) in report.warnings {
        let Ok(list) = serde_json::from_value::<Vec<Entry>>(list) else {
            return Err(ParseError(format!(
                "{file}: warnings `{kind}` are not a list of advisories"
            )));
        };
        entries.extend(list);
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(advisory) = entry.advisory else {
            continue;
        };
        let disclosed = match (&advisory.cvss, &advisory.informational) {
            (Some(vector), _) => Some(
                rate(vector)
                    .map_err(|e| ParseError(format!("{file}: advisory {}: {e}", advisory.id)))?
                    .severity,
            ),
            (None, Some(_)) => Some(Severity::Informational),
            (None, None) => None,
        };
        out.push(ImportedFinding {
            advisory: advisory.id,
            aliases: advisory.aliases,
            package: Some(format!(
                "pkg:cargo/{}@{}",
                entry.package.name, entry.package.version
            )),
            location: None,
            fingerprint: None,
            // An informational advisory (unmaintained, unsound) is answered by replacing
            // the crate, which is always possible: only a vulnerability waits for a patch.
            no_fix: advisory.informational.is_none()
                && entry
                    .versions
                    .as_ref()
                    .is_some_and(|v| v.patched.is_empty()),
            fixed_in: entry.versions.and_then(|v| v.patched.into_iter().next()),
            title: one_line(&advisory.title),
            disclosed,
            cvss: advisory.cvss,
        });
    }
    Ok(out)
}
