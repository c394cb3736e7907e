//! The evidence bundle: a zip an auditor checks offline with the audit log's public key.
//!
//! ```text
//! manifest.json                  what the bundle covers, the limits and observations the
//!                                results were computed with, and every other file's SHA-256
//! manifest.sig                   a signed note over manifest.json's SHA-256, by the log's key
//! events/period.jsonl            the period's events as an audit export: complete, each
//!                                under a signed checkpoint (`warden audit export` format)
//! events/context.jsonl           earlier events the tests read (a grant approved before the
//!                                period, a group's last review), each with its inclusion
//!                                proof to the export's last checkpoint
//! results.json                   each test's result with its exceptions
//! population/TEST.csv            each test's population, for the auditor's own sampling
//! report.html                    the report for people, printable, with charts
//! oscal/assessment-results.json  the same results as NIST OSCAL 1.1 assessment results
//! ```
//!
//! `verify` recomputes every result from the events inside and checks every proof; an edited,
//! removed or added record names the first bad item.
//!
//! What the bundle proves and what it states: the period's events are complete and
//! authentic (the signed checkpoints cover them, in order, with no gap); context events are
//! authentic but a server could leave one out; the observations (settings in force, the
//! checkpoints' signing times, recordings' hashes as found) are the server's statement, signed
//! with the rest.

mod oscal;
mod report;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warden_audit::{AuditEvent, ExportLine, Hash, HexHash, SigningKey, write_event_line};

pub use verify::{BundleError, Verified, verify};

use crate::catalog::Framework;
use crate::evaluate::{Evaluator, evaluate};
use crate::period::Period;
use crate::report::{Observations, Parameters, TestResult};

/// The format name written in the manifest.
pub const FORMAT: &str = "warden-compliance-evidence/1";

/// What a bundle covers and how its results were computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The audit log's origin (its key's name).
    pub origin: String,
    /// The framework.
    pub framework: Framework,
    /// The shipped catalog's version the results were computed under.
    pub catalog_version: String,
    /// The period, milliseconds.
    pub period: Period,
    /// When the bundle was made, milliseconds.
    pub generated_at: i64,
    /// The limits.
    pub parameters: Parameters,
    /// The server's observations.
    pub observations: Observations,
    /// Every other file (but the signature) and its SHA-256, hex.
    pub files: BTreeMap<String, String>,
}

/// An event from before the period, with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextEvent {
    /// The event.
    pub event: AuditEvent,
    /// The tree size the proof is to: the period export's last checkpoint.
    pub size: u64,
    /// The audit path, leaf to root.
    pub proof: Vec<HexHash>,
}

/// What the server puts in a bundle.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The framework.
    pub framework: Framework,
    /// The period.
    pub period: Period,
    /// When, milliseconds.
    pub generated_at: i64,
    /// The limits.
    pub parameters: Parameters,
    /// The observations.
    pub observations: Observations,
    /// The period export's header, prefix and checkpoints (`warden audit export`'s head).
    pub export_head: Vec<ExportLine>,
    /// The period's events in order, each with the leaf hash the log recorded: the export's
    /// event lines and what the results are computed from.
    pub events: Vec<(AuditEvent, Hash)>,
    /// Earlier events the tests read ([`context_needed`]), with their proofs.
    pub context: Vec<ContextEvent>,
}

const DAY: i64 = 24 * 60 * 60 * 1000;

/// How far before a period an event of a kind can matter to a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// From anywhere in the log: rare kinds (accounts, groups, reviews, policy, findings'
    /// clocks, break-glass).
    Always,
    /// Only this many milliseconds before the period: frequent kinds.
    Within(i64),
    /// Never: no test reads it from before the period.
    Never,
}

/// The reach of events with `action`: a browser session's sign-in a day, an SSH session its
/// maximum and a day, a grant 31 days, an account's enrollment its window; rare kinds always.
pub fn reach(action: &str, params: &Parameters) -> Reach {
    match action {
        "user.create" | "user.disable" | "user.delete" | "user.enable" | "passkey.reset"
        | "group.create" | "group.delete" | "policy.apply" => Reach::Always,
        a if a.starts_with("break_glass.") => Reach::Always,
        a if a.starts_with("review.") => Reach::Always,
        "vuln.sla.half"
        | "vuln.sla.breach"
        | "vuln.accept"
        | "vuln.false_positive"
        | "vuln.fix.available"
        | "vuln.rate" => Reach::Always,
        "auth.login" | "auth.enroll" | "auth.passkey" => Reach::Within(DAY),
        "passkey.register" => Reach::Within(params.enrollment_window.max(DAY)),
        "ssh.session.start" | "ssh.session.end" => Reach::Within(params.ssh_session_max + DAY),
        "access.approve" => Reach::Within(31 * DAY),
        _ => Reach::Never,
    }
}

/// The longest [`Reach::Within`]: before `period.from()` less this, only the kinds that reach
/// [`Reach::Always`] matter.
pub fn longest_reach(params: &Parameters) -> i64 {
    [
        DAY,
        params.enrollment_window.max(DAY),
        params.ssh_session_max + DAY,
        31 * DAY,
    ]
    .into_iter()
    .max()
    .unwrap_or(31 * DAY)
}

/// Whether an event from before the period belongs in a bundle's context: the tests read it
/// to judge something in the period ([`reach`]).
pub fn context_needed(e: &AuditEvent, period: Period, params: &Parameters) -> bool {
    match reach(&e.action, params) {
        Reach::Always => true,
        Reach::Within(span) => e.time >= period.from().as_millis() - span,
        Reach::Never => false,
    }
}

/// The SHA-256 of bytes, hex.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Each test of the framework over the context and the period's events, in the catalog's
/// order: the tests are independent, so half of them run on another core.
pub(crate) fn compute<E: std::borrow::Borrow<AuditEvent> + Sync>(
    framework: Framework,
    period: Period,
    parameters: Parameters,
    observations: &Observations,
    context: &[AuditEvent],
    events: &[E],
) -> Vec<TestResult> {
    in_halves(&framework.catalog().tests(), |tests| {
        evaluate(
            tests,
            context.iter().chain(events.iter().map(E::borrow)),
            period,
            parameters,
            observations.clone(),
            true,
        )
    })
}

/// `f` over the two halves of `items` at once, on two cores: its results, in order.
fn in_halves<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let (head, tail) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let second = scope.spawn(|| f(tail));
        let mut out = f(head);
        out.extend(
            second
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        );
        out
    })
}

/// A population as CSV: `subject,time,events,measure_ms,exception`.
pub(crate) fn population_csv(result: &TestResult) -> String {
    use std::fmt::Write as _;
    fn field(out: &mut String, s: &str) {
        if s.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&s.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(s);
        }
    }
    let mut out = String::with_capacity(64 + result.items.len() * 80);
    out.push_str("subject,time,events,measure_ms,exception\n");
    for i in &result.items {
        field(&mut out, &i.subject);
        out.push(',');
        out.push_str(&warden_model::Timestamp::from_millis(i.time).rfc3339_millis());
        out.push(',');
        for (n, seq) in i.events.iter().enumerate() {
            if n > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{seq}");
        }
        out.push(',');
        if let Some(m) = i.measure {
            let _ = write!(out, "{m}");
        }
        out.push(',');
        field(&mut out, i.exception.as_deref().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// The bundle's two event files, named with their SHA-256.
pub(crate) const EVENT_FILES: [&str; 2] = ["events/period.jsonl", "events/context.jsonl"];

/// The files a bundle holds beside the manifest, its signature and the event files (whose
/// hashes, `event_hashes` in [`EVENT_FILES`]' order, the OSCAL document binds), all derived
/// from the evidence: the same inputs give the same bytes.
pub(crate) fn derived_files(
    manifest_head: &Manifest,
    event_hashes: [String; 2],
    results: &[TestResult],
) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    // The populations are in the CSVs; results.json holds each result with its exceptions.
    let summaries: Vec<TestResult> = results
        .iter()
        .map(|r| TestResult {
            items: Vec::new(),
            ..r.clone()
        })
        .collect();
    files.insert(
        "results.json".to_owned(),
        serde_json::to_vec_pretty(&summaries).unwrap_or_default(),
    );
    // The CSVs are most of the work: half of them on another core.
    files.extend(in_halves(results, |half| {
        half.iter()
            .map(|r| {
                (
                    format!("population/{}.csv", r.id),
                    population_csv(r).into_bytes(),
                )
            })
            .collect()
    }));
    files.insert(
        "report.html".to_owned(),
        report::html(manifest_head, results).into_bytes(),
    );
    let mut hashes: BTreeMap<String, String> =
        files.iter().map(|(k, v)| (k.clone(), sha256(v))).collect();
    for (name, hash) in EVENT_FILES.into_iter().zip(event_hashes) {
        hashes.insert(name.to_owned(), hash);
    }
    files.insert(
        "oscal/assessment-results.json".to_owned(),
        oscal::assessment_results(manifest_head, results, &hashes).into_bytes(),
    );
    files
}

/// The context events as JSON lines.
pub(crate) fn context_jsonl(context: &[ContextEvent]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in context {
        if serde_json::to_writer(&mut out, c).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

/// The body of the manifest's signed note.
pub(crate) fn signed_body(origin: &str, manifest: &[u8]) -> String {
    format!("{FORMAT}\n{origin}\nsha256 {}\n", sha256(manifest))
}

/// Makes a bundle's files (name → bytes), signed with the log's key: a [`Builder`] given all
/// the events at once.
pub fn build(evidence: Evidence, key: &SigningKey) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let zip = Builder::new(evidence).finish(key)?;
    from_zip(&zip).map_err(|e| e.to_string())
}

/// A page of the period's events, shared by the threads that read it.
type Batch = Arc<Vec<(AuditEvent, Hash)>>;

/// The zip being written: the period's export first, as its events arrive.
type Zip = zip::ZipWriter<std::io::Cursor<Vec<u8>>>;

/// Builds a bundle from the period's events as they are read, a page at a time: each page
/// goes at once to the tests (half of them on each of two threads) and to a third thread
/// that writes it into the zip as the period export, hashing and compressing it. The pages
/// wait in short queues, so a reader faster than the tests waits and memory stays bounded.
/// [`Builder::finish`] closes the period and writes, signs and zips the rest.
#[derive(Debug)]
pub struct Builder {
    framework: Framework,
    period: Period,
    generated_at: i64,
    parameters: Parameters,
    observations: Observations,
    context: Vec<ContextEvent>,
    feeds: Vec<SyncSender<Batch>>,
    testers: Vec<JoinHandle<Vec<TestResult>>>,
    writer: JoinHandle<Result<(Zip, String), String>>,
}

/// Pages a thread may have waiting before the reader waits for it.
const QUEUE: usize = 4;

impl Builder {
    /// Starts a bundle of `evidence`, whose events (if any) are the first of the period's.
    pub fn new(evidence: Evidence) -> Builder {
        let Evidence {
            framework,
            period,
            generated_at,
            parameters,
            observations,
            export_head,
            events,
            context,
        } = evidence;
        let earlier: Arc<Vec<AuditEvent>> =
            Arc::new(context.iter().map(|c| c.event.clone()).collect());
        let tests = framework.catalog().tests();
        let (first, second) = tests.split_at(tests.len() / 2);
        let mut feeds = Vec::new();
        let testers = [first.to_vec(), second.to_vec()]
            .into_iter()
            .map(|tests| {
                let (feed, pages) = std::sync::mpsc::sync_channel::<Batch>(QUEUE);
                feeds.push(feed);
                let earlier = earlier.clone();
                let observations = observations.clone();
                std::thread::spawn(move || {
                    let mut evaluator =
                        Evaluator::new(&tests, period, parameters, observations, true);
                    for e in earlier.iter() {
                        evaluator.push(e);
                    }
                    drop(earlier);
                    for page in pages {
                        for (e, _) in page.iter() {
                            evaluator.push(e);
                        }
                    }
                    evaluator.finish()
                })
            })
            .collect();
        let (feed, pages) = std::sync::mpsc::sync_channel::<Batch>(QUEUE);
        feeds.push(feed);
        let writer = std::thread::spawn(move || write_export(&export_head, pages));
        let mut builder = Builder {
            framework,
            period,
            generated_at,
            parameters,
            observations,
            context,
            feeds,
            testers,
            writer,
        };
        if !events.is_empty() {
            // A thread that stopped is reported by `finish`.
            let _ = builder.push(events);
        }
        builder
    }

    /// The period's next events, in sequence order. Waits while the threads are a few pages
    /// behind. Fails only when one of them stopped; [`Builder::finish`] says why.
    pub fn push(&mut self, events: Vec<(AuditEvent, Hash)>) -> Result<(), String> {
        let page: Batch = Arc::new(events);
        for feed in &self.feeds {
            feed.send(page.clone())
                .map_err(|_| "a thread building the bundle stopped".to_owned())?;
        }
        Ok(())
    }

    /// Closes the period: each test's result, the populations, the report, the OSCAL
    /// document and the manifest, signed with the log's key, then the zip's bytes.
    pub fn finish(self, key: &SigningKey) -> Result<Vec<u8>, String> {
        let Builder {
            framework,
            period,
            generated_at,
            parameters,
            observations,
            context,
            feeds,
            testers,
            writer,
        } = self;
        drop(feeds);
        let mut results = Vec::new();
        for tester in testers {
            results.extend(
                tester
                    .join()
                    .map_err(|_| "the tests stopped while building the bundle".to_owned())?,
            );
        }
        let (mut zip, period_hash) = writer
            .join()
            .map_err(|_| "the export writer stopped".to_owned())??;
        let mut manifest = Manifest {
            format: FORMAT.to_owned(),
            origin: key.name().to_owned(),
            framework,
            catalog_version: framework.catalog().version.clone(),
            period,
            generated_at,
            parameters,
            observations,
            files: BTreeMap::new(),
        };
        let context = context_jsonl(&context);
        let event_hashes = [period_hash, sha256(&context)];
        let mut files = derived_files(&manifest, event_hashes.clone(), &results);
        manifest.files = files.iter().map(|(k, v)| (k.clone(), sha256(v))).collect();
        for (name, hash) in EVENT_FILES.into_iter().zip(event_hashes) {
            manifest.files.insert(name.to_owned(), hash);
        }
        files.insert("events/context.jsonl".to_owned(), context);
        let manifest_bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
        files.insert(
            "manifest.sig".to_owned(),
            key.sign_note(&signed_body(key.name(), &manifest_bytes))
                .into_bytes(),
        );
        files.insert("manifest.json".to_owned(), manifest_bytes);
        add_files(&mut zip, &files)?;
        Ok(zip.finish().map_err(|e| e.to_string())?.into_inner())
    }
}

/// The period's export, written into a new zip as its pages arrive (its head's lines, then
/// each event's line): the zip, and the export's SHA-256.
fn write_export(head: &[ExportLine], pages: Receiver<Batch>) -> Result<(Zip, String), String> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file(EVENT_FILES[0], zip_options())
        .map_err(|e| e.to_string())?;
    let mut hash = Sha256::new();
    let mut out = Vec::with_capacity(1 << 20);
    for line in head {
        if serde_json::to_writer(&mut out, line).is_ok() {
            out.push(b'\n');
        }
    }
    for page in pages {
        for (event, recorded) in page.iter() {
            write_event_line(&mut out, event, recorded);
            out.push(b'\n');
        }
        hash.update(&out);
        zip.write_all(&out).map_err(|e| e.to_string())?;
        out.clear();
    }
    hash.update(&out);
    zip.write_all(&out).map_err(|e| e.to_string())?;
    Ok((zip, hex(&hash.finalize())))
}

/// The most a bundle may hold, uncompressed: what a zip claims is checked against it before
/// anything is inflated.
pub const MAX_BUNDLE_BYTES: u64 = 8 << 30;

/// Writes files into a zip (deflated, in name order, with fixed times: the same files give
/// the same bytes). A bundle as built has its period export first, then the rest in name
/// order; either reads the same.
pub fn to_zip(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, String> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add_files(&mut zip, files)?;
    let cursor = zip.finish().map_err(|e| e.to_string())?;
    Ok(cursor.into_inner())
}

/// How every file is zipped.
fn zip_options() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        // zlib-rs's level 2 (its level 1 is a quicker pass that leaves a third more bytes):
        // event logs compress about 4:1, several times faster than the default's 5:1.
        .compression_level(Some(2))
        .last_modified_time(zip::DateTime::default())
        .large_file(true)
}

/// Adds files to a zip, in name order.
fn add_files(zip: &mut Zip, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    use std::io::Write;
    for (name, bytes) in files {
        zip.start_file(name.as_str(), zip_options())
            .map_err(|e| e.to_string())?;
        zip.write_all(bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Reads a zip's files, refusing one that is not a zip, is truncated, holds a directory or
/// a name twice, or claims more than [`MAX_BUNDLE_BYTES`].
pub fn from_zip(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, BundleError> {
    use std::io::Read;
    let not = |why: String| BundleError::NotABundle(why);
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| not(e.to_string()))?;
    let mut total: u64 = 0;
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| not(e.to_string()))?;
        let name = file.name().to_owned();
        if file.is_dir() {
            return Err(BundleError::Unexpected(name));
        }
        let size = file.size();
        total = total.saturating_add(size);
        if total > MAX_BUNDLE_BYTES {
            return Err(not(format!(
                "it claims more than {} GiB uncompressed",
                MAX_BUNDLE_BYTES >> 30
            )));
        }
        let mut content = Vec::new();
        (&mut file)
            .take(size)
            .read_to_end(&mut content)
            .map_err(|e| not(format!("`{name}`: {e}")))?;
        if files.insert(name.clone(), content).is_some() {
            return Err(not(format!("`{name}` is in it twice")));
        }
    }
    Ok(files)
}
