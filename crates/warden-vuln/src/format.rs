//! Which scanner wrote a file, told from its top-level shape, and one entry point that parses
//! any of them.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;

use crate::document::json_error;
use crate::{ImportedFinding, ParseError, cargo_audit, grype, osv, sarif, trivy};

/// A scanner output format Warden imports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    /// SARIF 2.1.0 (CodeQL, Semgrep, SpotBugs, ShellCheck, …).
    Sarif,
    /// Trivy JSON: schema 2, the older top-level list, and `trivy k8s` reports.
    Trivy,
    /// Grype JSON.
    Grype,
    /// OSV-Scanner JSON.
    OsvScanner,
    /// cargo-audit JSON.
    CargoAudit,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 5] = [
        Format::Sarif,
        Format::Trivy,
        Format::Grype,
        Format::OsvScanner,
        Format::CargoAudit,
    ];

    /// The name the CLI and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Sarif => "sarif",
            Format::Trivy => "trivy",
            Format::Grype => "grype",
            Format::OsvScanner => "osv-scanner",
            Format::CargoAudit => "cargo-audit",
        }
    }

    /// A format by name; `None` for `auto`; an error naming the choices otherwise.
    pub fn from_name(name: &str) -> Result<Option<Format>, ParseError> {
        if name == "auto" {
            return Ok(None);
        }
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .map(Some)
            .ok_or_else(|| {
                ParseError(format!(
                    "unknown format `{}`: expected auto, sarif, trivy, grype, osv-scanner or cargo-audit",
                    name.chars().take(40).flat_map(char::escape_debug).collect::<String>()
                ))
            })
    }

    /// Tells the format from the document's top level: its keys (without keeping their
    /// values), or a top-level list (Trivy before schema 2).
    pub fn detect(file: &str, text: &str) -> Result<Format, ParseError> {
        let undetectable = || {
            ParseError(format!(
                "{file}: cannot tell which scanner wrote it (not SARIF, Trivy, Grype, OSV-Scanner \
                 or cargo-audit JSON); name the format with --format"
            ))
        };
        let trimmed = text.trim_start();
        if trimmed.is_empty() {
            return Err(ParseError(format!(
                "{file}: the file is empty; OSV-Scanner writes nothing when it finds nothing: \
                 name that with --format osv-scanner"
            )));
        }
        if trimmed.starts_with('[') {
            // Validate it is JSON at all, for a positioned error.
            let _: IgnoredAny = serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
            return Ok(Format::Trivy);
        }
        let keys: BTreeMap<String, IgnoredAny> =
            serde_json::from_str(text).map_err(|e| json_error(file, &e))?;
        let has = |k: &str| keys.contains_key(k);
        Ok(if has("runs") && (has("version") || has("$schema")) {
            Format::Sarif
        } else if has("SchemaVersion") || has("ArtifactName") || has("ClusterName") {
            Format::Trivy
        } else if has("matches") && (has("descriptor") || has("source")) {
            Format::Grype
        } else if has("vulnerabilities") && (has("database") || has("lockfile")) {
            Format::CargoAudit
        } else if has("results") {
            Format::OsvScanner
        } else {
            return Err(undetectable());
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a scanner's output; `format` `None` tells it from the content.
pub fn parse(
    format: Option<Format>,
    file: &str,
    text: &str,
) -> Result<(Format, Vec<ImportedFinding>), ParseError> {
    let format = match format {
        Some(f) => f,
        None => Format::detect(file, text)?,
    };
    let mut findings = match format {
        Format::Sarif => sarif::parse(file, text)?,
        Format::Trivy => trivy::parse(file, text)?,
        Format::Grype => grype::parse(file, text)?,
        Format::OsvScanner => osv::parse(file, text)?,
        Format::CargoAudit => cargo_audit::parse(file, text)?,
    };
    for (at, f) in findings.iter_mut().enumerate() {
        clean(f);
        if f.advisory.is_empty() {
            return Err(ParseError(format!(
                "{file}: finding {} has no advisory or rule id",
                at + 1
            )));
        }
    }
    Ok((format, findings))
}

/// The longest id, purl or location kept, in characters.
const MAX_FIELD: usize = 1000;

/// Keeps what a scanner wrote within bounds: no control characters (a NUL in a purl, say,
/// which PostgreSQL cannot store), ids and locations at most [`MAX_FIELD`] characters, at
/// most 100 aliases; an empty title becomes the advisory's id.
fn clean(f: &mut ImportedFinding) {
    fn bounded(s: &str, max: usize) -> String {
        s.chars().filter(|c| !c.is_control()).take(max).collect()
    }
    let opt = |s: &mut Option<String>| {
        if let Some(v) = s {
            *v = bounded(v, MAX_FIELD);
        }
    };
    f.advisory = bounded(f.advisory.trim(), 200);
    f.aliases.truncate(100);
    for a in &mut f.aliases {
        *a = bounded(a.trim(), 200);
    }
    f.aliases.retain(|a| !a.is_empty());
    opt(&mut f.package);
    opt(&mut f.location);
    opt(&mut f.fingerprint);
    opt(&mut f.fixed_in);
    opt(&mut f.cvss);
    if f.title.is_empty() {
        f.title = f.advisory.clone();
    }
}
