//! Warden's vulnerability core, without I/O and without reading the clock: severities,
//! CVSS v3.x base scores, SLA clocks, and scanner output parsers.
//!
//! Principles (issue 9): an advisory without a rating is *unrated* and goes to triage, never
//! guessed; severity is never part of a finding's identity; SLAs are exact durations from a
//! timestamp (Critical 24 hours, not "1 day").
//!
//! Threat model: parsers read files a scanner (or an attacker controlling a scanned artifact)
//! produced. They never panic, bound what they keep, and report the position of what is wrong.

pub mod cargo_audit;
pub mod cvss;
pub mod osv;
pub mod severity;
pub mod sla;

pub use cvss::{Cvss31, CvssError};
pub use severity::Severity;
pub use sla::SlaPolicy;

/// One finding as a scanner reported it, before Warden's bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedFinding {
    /// The advisory's own id (`RUSTSEC-2020-0091`, `CVE-…`, `GHSA-…`).
    pub advisory: String,
    /// Other ids of the same advisory (CVE, GHSA, OSV): findings sharing any are one.
    pub aliases: Vec<String>,
    /// The affected package as a purl (`pkg:cargo/arc-swap@0.4.7`), when there is one.
    pub package: Option<String>,
    /// A one-line title.
    pub title: String,
    /// The rating the advisory discloses; `None` is unrated, for triage.
    pub disclosed: Option<Severity>,
    /// The CVSS vector it came from, when there was one.
    pub cvss: Option<String>,
}

/// Why a scanner file could not be read: one line naming the file's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);
