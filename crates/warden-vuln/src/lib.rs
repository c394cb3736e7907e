//! Warden's vulnerability core, without I/O and without reading the clock: severities,
//! CVSS v3.x base scores, SLA clocks, and scanner output parsers.
//!
//! Principles (issue 9): an advisory without a rating is *unrated* and goes to triage, never
//! guessed; severity is never part of a finding's identity; SLAs are exact durations from a
//! timestamp (Critical 24 hours, not "1 day").
//!
//! Threat model: parsers read files a scanner (or an attacker controlling a scanned artifact)
//! produced. They never panic, bound what they keep, and report the position of what is wrong.

pub mod burndown;
pub mod cargo_audit;
pub mod cvss;
mod document;
mod format;
pub mod grype;
pub mod osv;
pub mod sarif;
pub mod severity;
pub mod sla;
pub mod trivy;

pub use cvss::{Cvss31, CvssError, CvssRating, rate};
pub use format::{Format, parse};
pub use severity::{Severity, SeverityError};
pub use sla::{DEFAULT_TIER, SlaPolicy, SlaTiers};

/// One finding as a scanner reported it, before Warden's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedFinding {
    /// The advisory's own id (`RUSTSEC-2020-0091`, `CVE-…`, `GHSA-…`).
    pub advisory: String,
    /// Other ids of the same advisory (CVE, GHSA, OSV): findings sharing any are one.
    pub aliases: Vec<String>,
    /// The affected package as a purl (`pkg:cargo/arc-swap@0.4.7`), when there is one.
    pub package: Option<String>,
    /// Where in code, for static analysis (`src/db.py:39`).
    pub location: Option<String>,
    /// The scanner's stable fingerprint of the location (SARIF `partialFingerprints`), which
    /// survives lines moving; identifies the finding in place of `location` when present.
    pub fingerprint: Option<String>,
    /// The version that fixes it, when the scanner knows one.
    pub fixed_in: Option<String>,
    /// Whether the scanner says the advisory has no fixed version yet: Trivy's `affected`,
    /// `will_not_fix`, `fix_deferred` or `end_of_life` (or, before Trivy had a status, no
    /// `FixedVersion`), Grype's `not-fixed` or `wont-fix`, a RustSec vulnerability with no
    /// patched version, an OSV advisory with no `fixed` event for the package. Such a
    /// finding's SLA clock waits for an import that shows a fix. `false` when a fix is
    /// published or the scanner does not say: the clock runs.
    pub no_fix: bool,
    /// A one-line title.
    pub title: String,
    /// The rating the advisory discloses; `None` is unrated, for triage.
    pub disclosed: Option<Severity>,
    /// The CVSS vector it came from, when there was one.
    pub cvss: Option<String>,
}

impl ImportedFinding {
    /// What the finding is on, for its identity: the package's purl without qualifiers or
    /// subpath (`pkg:deb/debian/libc6@2.28-10`), else `fp:` and the fingerprint, else `loc:`
    /// and the location, else nothing (a finding on the asset as a whole).
    pub fn subject(&self) -> String {
        if let Some(purl) = &self.package {
            let bare = purl.split(['?', '#']).next().unwrap_or_default();
            return match bare.split_once('/') {
                Some((scheme_type, rest)) => {
                    format!("{}/{rest}", scheme_type.to_ascii_lowercase())
                }
                None => bare.to_owned(),
            };
        }
        if let Some(fp) = &self.fingerprint {
            return format!("fp:{fp}");
        }
        match &self.location {
            Some(loc) => format!("loc:{loc}"),
            None => String::new(),
        }
    }

    /// Every id the advisory is known by, the advisory's own first, each once, uppercase.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::with_capacity(1 + self.aliases.len());
        for id in std::iter::once(&self.advisory).chain(&self.aliases) {
            let id = id.trim().to_ascii_uppercase();
            if !id.is_empty() && !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}

/// Why a scanner file could not be read: one line naming the file's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The longest title kept, in characters.
pub const MAX_TITLE: usize = 200;

/// A scanner's free text as a title: its first non-empty line, at most [`MAX_TITLE`]
/// characters, without control characters.
pub(crate) fn one_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let mut out: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TITLE)
        .collect();
    if line.chars().count() > MAX_TITLE {
        out.pop();
        out.push('…');
    }
    out
}

/// A short, stable key for a finding the scanner gave no id, from its text: the 64-bit FNV-1a
/// hash of the text's UTF-8 bytes, as 16 lowercase hex digits (`""` is `cbf29ce484222325`).
/// The same text gives the same key in every release, so re-imports keep their identity.
///
/// Not collision-resistant, and it need not be: the key sits beside the finding's location in
/// its identity, so a crafted collision could only merge two findings of one tool at one place.
pub(crate) fn text_key(text: &str) -> String {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = text
        .bytes()
        .fold(OFFSET_BASIS, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{hash:016x}")
}
