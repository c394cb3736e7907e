//! Offline verification of a bundle with the log's public key alone.

use std::collections::{BTreeMap, BTreeSet};

use warden_audit::{AuditEvent, ExportLine, VerifierKey, verify_inclusion};

use super::{
    ContextEvent, EVENT_FILES, FORMAT, Manifest, compute, context_jsonl, derived_files, sha256,
    signed_body,
};
use crate::report::TestResult;

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The manifest, as signed.
    pub manifest: Manifest,
    /// The period's events checked.
    pub events: u64,
    /// Context events checked.
    pub context: u64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// The results, recomputed from the events (equal to those the bundle holds).
    pub results: Vec<TestResult>,
}

/// Why a bundle failed verification: one line naming the first bad item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a zip, truncated, or not a bundle.
    #[error("not a Warden evidence bundle: {0}")]
    NotABundle(String),
    /// A file the manifest names is not in the bundle.
    #[error("`{0}` is missing from the bundle")]
    Missing(String),
    /// A file is in the bundle that the manifest does not name.
    #[error("`{0}` is in the bundle but not in its manifest")]
    Unexpected(String),
    /// A file's bytes are not those the manifest names.
    #[error("`{file}` was changed: its SHA-256 is {sha256}, the manifest says {expected}")]
    Changed {
        /// Which.
        file: String,
        /// What it hashes to.
        sha256: String,
        /// What the manifest says.
        expected: String,
    },
    /// The manifest's signature does not verify with the key given.
    #[error("the manifest's signature does not verify with key `{key}`: {why}")]
    Signature {
        /// The key given.
        key: String,
        /// Why.
        why: String,
    },
    /// The manifest does not read.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// The period's events fail the audit log's checks.
    #[error("events/period.jsonl: {0}")]
    Events(String),
    /// A context event fails its proof.
    #[error("events/context.jsonl: {0}")]
    Context(String),
    /// A derived file differs from what the events give.
    #[error("`{file}` does not match the events: {why}")]
    Derived {
        /// Which.
        file: String,
        /// The first difference.
        why: String,
    },
}

fn file<'f>(files: &'f BTreeMap<String, Vec<u8>>, name: &str) -> Result<&'f [u8], BundleError> {
    files
        .get(name)
        .map(Vec::as_slice)
        .ok_or_else(|| BundleError::Missing(name.to_owned()))
}

/// Verifies a bundle's files with the log's public key: the signature, every file's hash,
/// the period's events against their signed checkpoints, each context event's inclusion,
/// and every result, population and report recomputed from the events.
pub fn verify(
    files: &BTreeMap<String, Vec<u8>>,
    key: &VerifierKey,
) -> Result<Verified, BundleError> {
    let manifest_bytes = files
        .get("manifest.json")
        .ok_or_else(|| BundleError::NotABundle("it has no manifest.json".to_owned()))?;
    let signature = String::from_utf8_lossy(file(files, "manifest.sig")?).into_owned();
    let bad_signature = |why: String| BundleError::Signature {
        key: key.name().to_owned(),
        why,
    };
    let body = key
        .open_note(&signature)
        .map_err(|e| bad_signature(e.to_string()))?;
    if body != signed_body(key.name(), manifest_bytes) {
        return Err(bad_signature(
            "it signs another manifest or another log".to_owned(),
        ));
    }
    let manifest: Manifest =
        serde_json::from_slice(manifest_bytes).map_err(|e| BundleError::Manifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(BundleError::Manifest(format!(
            "format `{}`, this version reads `{FORMAT}`",
            manifest.format
        )));
    }
    // The period's events: complete, under signed checkpoints and read for the
    // recomputation (on every core), while another thread hashes every file.
    let export = file(files, "events/period.jsonl")?;
    let mut events = Vec::with_capacity(export.len() / 400);
    let (report, hashed) = std::thread::scope(|scope| {
        let hashed = scope.spawn(|| check_hashes(files, &manifest));
        let report = warden_audit::verify_events(export, key, |e| events.push(e))
            .map_err(|e| BundleError::Events(e.to_string()));
        let hashed = hashed
            .join()
            .map_err(|_| BundleError::NotABundle("the hashing stopped".to_owned()))
            .and_then(|r| r);
        (report, hashed)
    });
    hashed?;
    let report = report?;
    let signed = signed_checkpoints(export, key)?;

    // Context: each event included in the tree of a signed checkpoint of the export.
    let context_bytes = file(files, "events/context.jsonl")?;
    let context = read_context(context_bytes, &signed)?;
    if context_jsonl(&context) != context_bytes {
        return Err(BundleError::Context(
            "it is not in its canonical form".to_owned(),
        ));
    }
    let context_events: Vec<AuditEvent> = context.into_iter().map(|c| c.event).collect();

    // The observations' checkpoints are the export's, which verified.
    let mut observations = manifest.observations.clone();
    for c in &mut observations.checkpoints {
        if !signed.contains_key(&c.size) {
            return Err(BundleError::Manifest(format!(
                "checkpoint {} is not among the signed checkpoints of events/period.jsonl",
                c.size
            )));
        }
        c.consistent = true;
    }
    let results = compute(
        manifest.framework,
        manifest.period,
        manifest.parameters,
        &observations,
        &context_events,
        &events,
    );
    let event_hashes =
        EVENT_FILES.map(|name| manifest.files.get(name).cloned().unwrap_or_default());
    let expected = derived_files(&manifest, event_hashes, &results);
    for (name, bytes) in &expected {
        if file(files, name)? != bytes.as_slice() {
            return Err(BundleError::Derived {
                file: name.clone(),
                why: first_difference(name, file(files, name)?, bytes),
            });
        }
    }
    Ok(Verified {
        manifest,
        events: report.events,
        context: context_events.len() as u64,
        checkpoints: report.checkpoints,
        results,
    })
}

/// Every file but the signature is named by the manifest with its hash, and nothing else is
/// in the bundle.
fn check_hashes(files: &BTreeMap<String, Vec<u8>>, manifest: &Manifest) -> Result<(), BundleError> {
    for (name, expected) in &manifest.files {
        let actual = sha256(file(files, name)?);
        if &actual != expected {
            return Err(BundleError::Changed {
                file: name.clone(),
                sha256: actual,
                expected: expected.clone(),
            });
        }
    }
    let named: BTreeSet<&str> = manifest.files.keys().map(String::as_str).collect();
    if let Some(extra) = files.keys().find(|f| {
        !named.contains(f.as_str()) && !matches!(f.as_str(), "manifest.json" | "manifest.sig")
    }) {
        return Err(BundleError::Unexpected(extra.clone()));
    }
    Ok(())
}

/// The export's signed checkpoints: size → root. The export verified, so each is signed.
fn signed_checkpoints(
    export: &[u8],
    key: &VerifierKey,
) -> Result<BTreeMap<u64, warden_audit::Hash>, BundleError> {
    let mut signed = BTreeMap::new();
    // Checkpoints come before the first event (the export verified, so none after).
    for line in export
        .split(|b| *b == b'\n')
        .take_while(|l| !l.starts_with(b"{\"type\":\"event\""))
    {
        if !line.starts_with(b"{\"type\":\"checkpoint\"") {
            continue;
        }
        let Ok(ExportLine::Checkpoint { note, .. }) = serde_json::from_slice(line) else {
            return Err(BundleError::Events(
                "a checkpoint line does not read".to_owned(),
            ));
        };
        let c = key
            .open(&note)
            .map_err(|e| BundleError::Events(e.to_string()))?;
        signed.insert(c.size, c.root);
    }
    Ok(signed)
}

fn read_context(
    bytes: &[u8],
    signed: &BTreeMap<u64, warden_audit::Hash>,
) -> Result<Vec<ContextEvent>, BundleError> {
    let mut out = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let c: ContextEvent = serde_json::from_slice(line)
            .map_err(|e| BundleError::Context(format!("line {}: {e}", n + 1)))?;
        let seq = c.event.seq;
        let root = signed.get(&c.size).ok_or_else(|| {
            BundleError::Context(format!(
                "event {seq}: its proof is to size {}, which no signed checkpoint has",
                c.size
            ))
        })?;
        let path: Vec<warden_audit::Hash> = c.proof.iter().map(|h| h.0).collect();
        if seq == 0 || !verify_inclusion(seq - 1, c.size, &c.event.leaf_hash(), &path, root) {
            return Err(BundleError::Context(format!(
                "event {seq}: not included in the signed tree of size {}: the event or its proof was changed",
                c.size
            )));
        }
        if out
            .last()
            .is_some_and(|p: &ContextEvent| p.event.seq >= seq)
        {
            return Err(BundleError::Context(format!("event {seq}: out of order")));
        }
        out.push(c);
    }
    Ok(out)
}

/// Where two versions of a derived file first differ, in one line.
fn first_difference(name: &str, got: &[u8], want: &[u8]) -> String {
    let got_lines: Vec<&[u8]> = got.split(|b| *b == b'\n').collect();
    let want_lines: Vec<&[u8]> = want.split(|b| *b == b'\n').collect();
    let line = got_lines
        .iter()
        .zip(&want_lines)
        .position(|(a, b)| a != b)
        .unwrap_or(got_lines.len().min(want_lines.len()));
    let shown = want_lines
        .get(line)
        .map(|l| {
            String::from_utf8_lossy(l)
                .trim()
                .chars()
                .take(120)
                .collect::<String>()
        })
        .unwrap_or_default();
    format!("{name} line {} differs (recomputed: `{shown}`)", line + 1)
}
