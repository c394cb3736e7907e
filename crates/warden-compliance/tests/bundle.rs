//! The evidence bundle made from a signed log and verified offline: the round trip gives the
//! server's results (a property over random logs), and each kind of tampering is named.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test assertions and helpers"
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use warden_audit::{
    AuditEvent, Checkpoint, ExportLine, FORMAT, Frontier, HexHash, NodeId, Outcome, SigningKey,
    inclusion_proof,
};
use warden_compliance::bundle::{
    self, BundleError, ContextEvent, Evidence, context_needed, from_zip, to_zip,
};
use warden_compliance::{
    CheckpointSeen, Framework, Observations, Parameters, Period, Settings, TestId, TestResult,
    evaluate,
};

const ORIGIN: &str = "test.example/audit";
const T0: i64 = 1_790_000_000_000;
const MIN: i64 = 60_000;

fn key() -> SigningKey {
    SigningKey::from_seed(ORIGIN, &[7u8; 32]).unwrap()
}

/// A journey-shaped log: groups, a review, a grant, a leaver, sessions, a policy.
fn journey() -> Vec<AuditEvent> {
    let person = |n: &str| json!({"kind": "user", "name": n, "token_id": "t", "role": "admin"});
    let system = json!({"kind": "system"});
    let rows: Vec<(i64, Value, &str, &str, Value)> = vec![
        (
            0,
            system.clone(),
            "policy.apply",
            "policy:v1",
            json!({"version": 1, "tests": 4}),
        ),
        (1, person("root"), "group.create", "group:ops", json!({})),
        (1, person("root"), "group.create", "group:web", json!({})),
        (2, person("root"), "user.create", "user:alice", json!({})),
        (
            3,
            person("bob"),
            "access.approve",
            "request:1",
            json!({"requester": "alice", "group": "ops", "grant": "g1", "expires_at": "2026-09-21T14:23:20.000Z"}),
        ),
        // The period starts at minute 5.
        (
            6,
            person("alice"),
            "ssh.session.start",
            "host:db",
            json!({"session": "s1"}),
        ),
        (
            8,
            system.clone(),
            "ssh.session.end",
            "host:db",
            json!({"session": "s1", "principal": "user:alice", "recordings": []}),
        ),
        (
            10,
            system.clone(),
            "grant.expire",
            "user:alice",
            json!({"grant": "g1"}),
        ),
        (
            11,
            person("root"),
            "review.create",
            "review:r1",
            json!({"scope": "groups:ops", "items": 1}),
        ),
        (
            12,
            person("carol"),
            "review.keep",
            "review:r1",
            json!({"items": [1]}),
        ),
        (13, person("root"), "user.disable", "user:alice", json!({})),
        (
            14,
            person("root"),
            "policy.apply",
            "policy:v3",
            json!({"version": 3, "tests": 0}),
        ),
    ];
    rows.into_iter()
        .enumerate()
        .map(|(i, (minute, actor, action, target, details))| {
            event(i, T0 + minute * MIN, actor, action, target, details)
        })
        .collect()
}

fn event(
    i: usize,
    time: i64,
    actor: Value,
    action: &str,
    target: &str,
    details: Value,
) -> AuditEvent {
    let label = actor
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| "system".to_owned(), |n| format!("user:{n}"));
    AuditEvent {
        seq: u64::try_from(i).unwrap() + 1,
        time,
        actor,
        actor_label: label,
        auth: "none".into(),
        action: action.into(),
        target: target.into(),
        outcome: Outcome::Success,
        reason: None,
        request_id: format!("r{i}"),
        source: Some("127.0.0.1".into()),
        details,
    }
}

/// The evidence a server would gather from `log` for `period`, signed at the log's end.
fn evidence(log: &[AuditEvent], period: Period, params: Parameters) -> Evidence {
    let mut tree = Frontier::new();
    let mut nodes = BTreeMap::new();
    let first = log
        .iter()
        .find(|e| e.time >= period.from().as_millis())
        .map_or(log.len() as u64 + 1, |e| e.seq);
    let last = log
        .iter()
        .filter(|e| e.time < period.to().as_millis())
        .map(|e| e.seq)
        .next_back()
        .unwrap_or(0)
        .max(first - 1);
    let mut prefix = tree.clone();
    for e in log {
        if e.seq == first {
            prefix = tree.clone();
        }
        nodes.extend(tree.push(e.leaf_hash()));
    }
    if first > log.len() as u64 {
        prefix = tree.clone();
    }
    let size = log.len() as u64;
    let k = key();
    let note = k.sign(&Checkpoint {
        origin: ORIGIN.into(),
        size,
        root: tree.root(),
    });
    let consistency = if size > last {
        warden_audit::consistency_proof(last, size, |id: NodeId| nodes.get(&id).copied())
            .unwrap()
            .into_iter()
            .map(HexHash)
            .collect()
    } else {
        Vec::new()
    };
    let export_head = vec![
        ExportLine::Header {
            format: FORMAT.into(),
            origin: ORIGIN.into(),
            first_seq: first,
            last_seq: last,
            filter: None,
        },
        ExportLine::Prefix {
            size: first - 1,
            frontier: prefix.nodes().iter().map(|h| HexHash(*h)).collect(),
        },
        ExportLine::Checkpoint { note, consistency },
    ];
    let events = log
        .iter()
        .filter(|e| (first..=last).contains(&e.seq))
        .map(|e| (e.clone(), e.leaf_hash()))
        .collect();
    let context = log
        .iter()
        .filter(|e| e.seq < first && context_needed(e, period, &params))
        .map(|e| ContextEvent {
            event: e.clone(),
            size,
            proof: inclusion_proof(e.seq - 1, size, |id: NodeId| nodes.get(&id).copied())
                .unwrap()
                .into_iter()
                .map(HexHash)
                .collect(),
        })
        .collect();
    Evidence {
        framework: Framework::Soc2,
        period,
        generated_at: period.to().as_millis() + 1,
        parameters: params,
        observations: Observations {
            settings: Some(Settings {
                web_idle: 30 * MIN,
                web_lifetime: 720 * MIN,
                ssh_idle: Some(60 * MIN),
                ssh_session: Some(1440 * MIN),
            }),
            checkpoints: vec![CheckpointSeen {
                size,
                time: period.to().as_millis() - 1,
                consistent: true,
            }],
            recordings: BTreeMap::new(),
        },
        export_head,
        events,
        context,
    }
}

fn period() -> Period {
    Period::recorded(T0 + 5 * MIN, T0 + 20 * MIN).unwrap()
}

fn params() -> Parameters {
    Parameters {
        review_every: 12 * MIN,
        ..Parameters::default()
    }
}

/// Re-signs a tampered bundle's manifest, as a server holding the key could: what is left is
/// the recomputation's to catch.
fn resign(files: &mut BTreeMap<String, Vec<u8>>) {
    let mut manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    for (name, bytes) in files.iter() {
        if name != "manifest.json" && name != "manifest.sig" {
            manifest["files"][name] = json!(bundle_sha(bytes));
        }
    }
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    let body = format!(
        "{}\n{ORIGIN}\nsha256 {}\n",
        bundle::FORMAT,
        bundle_sha(&bytes)
    );
    files.insert("manifest.sig".into(), key().sign_note(&body).into_bytes());
    files.insert("manifest.json".into(), bytes);
}

fn bundle_sha(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check(files: &BTreeMap<String, Vec<u8>>) -> Result<bundle::Verified, BundleError> {
    bundle::verify(files, &key().verifier())
}

#[test]
fn a_bundle_verifies_offline_and_gives_the_servers_results() {
    let log = journey();
    let ev = evidence(&log, period(), params());
    let files = bundle::build(ev.clone(), &key()).unwrap();
    let zipped = to_zip(&files).unwrap();
    assert_eq!(
        to_zip(&files).unwrap(),
        zipped,
        "the same files give the same zip"
    );
    let back = from_zip(&zipped).unwrap();
    assert_eq!(back, files);
    let verified = check(&back).unwrap();
    assert_eq!(verified.events, 7);
    assert_eq!(verified.context, 5);

    // The server's own view over the whole log gives the same results.
    let whole = evaluate(
        &Framework::Soc2.catalog().tests(),
        &log,
        period(),
        params(),
        ev.observations.clone(),
        true,
    );
    assert_eq!(verified.results, whole);
    let by = |id: TestId| {
        verified
            .results
            .iter()
            .find(|r| r.id == id)
            .unwrap()
            .clone()
    };
    assert!(by(TestId::GrantExpiry).passed() && by(TestId::GrantExpiry).population == 1);
    assert!(by(TestId::LeaverDeprovision).passed());
    let policy = by(TestId::PolicyChange);
    assert_eq!(policy.exception_count, 1);
    assert_eq!(
        policy.exceptions[0].exception.as_deref(),
        Some("follows v1: the versions between are missing from the log")
    );
    let reviews = by(TestId::AccessReview);
    assert_eq!(
        reviews
            .exceptions
            .iter()
            .map(|e| e.subject.as_str())
            .collect::<Vec<_>>(),
        ["group:web"]
    );

    // What the auditor reads: the CSV, the report, the OSCAL document.
    let csv = String::from_utf8(files["population/policy-change.csv"].clone()).unwrap();
    assert!(
        csv.starts_with("subject,time,events,measure_ms,exception\n"),
        "{csv}"
    );
    assert!(csv.contains("policy:v3,2026-09-21T14:27:20.000Z,12,,follows v1: the versions between are missing from the log"), "{csv}");
    let html = String::from_utf8(files["report.html"].clone()).unwrap();
    assert!(html.contains("CC6.1") && html.contains("<svg"), "{html}");
    let oscal: Value = serde_json::from_slice(&files["oscal/assessment-results.json"]).unwrap();
    assert_eq!(
        oscal["assessment-results"]["metadata"]["oscal-version"],
        "1.1.2"
    );
    let findings = oscal["assessment-results"]["results"][0]["findings"]
        .as_array()
        .unwrap();
    assert_eq!(findings.len(), Framework::Soc2.catalog().controls.len());
    let cc81 = findings
        .iter()
        .find(|f| f["title"].as_str().unwrap().starts_with("CC8.1 "))
        .unwrap();
    assert_eq!(cc81["target"]["status"]["state"], "not-satisfied");
    // Made again for the same period, the OSCAL document is the same bytes.
    let again = bundle::build(evidence(&log, period(), params()), &key()).unwrap();
    assert_eq!(
        again["oscal/assessment-results.json"],
        files["oscal/assessment-results.json"]
    );
}

/// The server builds a bundle from pages as it reads them: however the events are cut into
/// pages, the bundle is the same bytes, and it verifies.
#[test]
fn a_bundle_built_page_by_page_is_the_bundle_built_at_once() {
    let log = journey();
    let at_once = bundle::Builder::new(evidence(&log, period(), params()))
        .finish(&key())
        .unwrap();
    check(&from_zip(&at_once).unwrap()).unwrap();
    for size in [1, 2, 3, 100] {
        let mut ev = evidence(&log, period(), params());
        let events = std::mem::take(&mut ev.events);
        let mut builder = bundle::Builder::new(ev);
        for page in events.chunks(size) {
            builder.push(page.to_vec()).unwrap();
        }
        // An empty page changes nothing.
        builder.push(Vec::new()).unwrap();
        assert!(
            builder.finish(&key()).unwrap() == at_once,
            "pages of {size} give another bundle"
        );
    }
}

#[test]
fn every_kind_of_tampering_is_named() {
    let log = journey();
    let files = bundle::build(evidence(&log, period(), params()), &key()).unwrap();
    let fails = |f: &BTreeMap<String, Vec<u8>>| check(f).unwrap_err().to_string();

    // An edited file, without re-signing: its hash.
    let mut edited = files.clone();
    edited
        .get_mut("results.json")
        .unwrap()
        .extend_from_slice(b" ");
    assert!(
        fails(&edited).starts_with("`results.json` was changed: its SHA-256 is "),
        "{}",
        fails(&edited)
    );

    // A file removed, a file added.
    let mut removed = files.clone();
    removed.remove("population/grant-expiry.csv");
    assert_eq!(
        fails(&removed),
        "`population/grant-expiry.csv` is missing from the bundle"
    );
    let mut added = files.clone();
    added.insert("extra.txt".into(), b"hi".to_vec());
    assert_eq!(
        fails(&added),
        "`extra.txt` is in the bundle but not in its manifest"
    );

    // A wrong key, a foreign or truncated file.
    let other = SigningKey::from_seed(ORIGIN, &[8u8; 32]).unwrap();
    let err = bundle::verify(&files, &other.verifier())
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("the manifest's signature does not verify with key `test.example/audit`: "),
        "{err}"
    );
    let zipped = to_zip(&files).unwrap();
    let err = from_zip(&zipped[..zipped.len() / 2])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("not a Warden evidence bundle: "), "{err}");
    let err = from_zip(b"PK\x03\x04 not really").unwrap_err().to_string();
    assert!(err.starts_with("not a Warden evidence bundle: "), "{err}");

    // A zip of something else.
    let foreign = BTreeMap::from([("notes.txt".to_owned(), b"hello".to_vec())]);
    let back = from_zip(&to_zip(&foreign).unwrap()).unwrap();
    assert_eq!(
        fails(&back),
        "not a Warden evidence bundle: it has no manifest.json"
    );

    // Re-signed by a server holding the key, a lie is still caught by recomputation.
    let mut lied = files.clone();
    let text = String::from_utf8(lied["results.json"].clone())
        .unwrap()
        .replacen("\"exception_count\": 1", "\"exception_count\": 0", 1);
    lied.insert("results.json".into(), text.into_bytes());
    resign(&mut lied);
    assert!(
        fails(&lied).starts_with("`results.json` does not match the events: results.json line "),
        "{}",
        fails(&lied)
    );

    // An event edited in the period, re-signed: the log's own checks name it.
    let mut event_edited = files.clone();
    let text = String::from_utf8(event_edited["events/period.jsonl"].clone())
        .unwrap()
        .replace("\"user:alice\",\"time\"", "\"user:mallory\",\"time\"");
    assert_ne!(
        text.as_bytes(),
        event_edited["events/period.jsonl"].as_slice()
    );
    event_edited.insert("events/period.jsonl".into(), text.into_bytes());
    resign(&mut event_edited);
    assert!(
        fails(&event_edited).starts_with("events/period.jsonl: event "),
        "{}",
        fails(&event_edited)
    );

    // An event removed from the period, re-signed.
    let mut dropped = files.clone();
    let text = String::from_utf8(dropped["events/period.jsonl"].clone()).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"grant.expire\""))
        .collect();
    dropped.insert(
        "events/period.jsonl".into(),
        (kept.join("\n") + "\n").into_bytes(),
    );
    resign(&mut dropped);
    assert!(
        fails(&dropped).starts_with("events/period.jsonl: "),
        "{}",
        fails(&dropped)
    );

    // A context event edited, re-signed: its inclusion proof fails.
    let mut context = files.clone();
    let text = String::from_utf8(context["events/context.jsonl"].clone())
        .unwrap()
        .replacen("\"group:web\"", "\"group:www\"", 1);
    context.insert("events/context.jsonl".into(), text.into_bytes());
    resign(&mut context);
    assert!(
        fails(&context).starts_with(
            "events/context.jsonl: event 3: not included in the signed tree of size 12"
        ),
        "{}",
        fails(&context)
    );

    // A context event added that the log never held, re-signed.
    let mut forged = files.clone();
    let mut text = String::from_utf8(forged["events/context.jsonl"].clone()).unwrap();
    let mut line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    line["event"]["seq"] = json!(4);
    line["event"]["target"] = json!("group:forged");
    text = format!("{}\n{text}", serde_json::to_string(&line).unwrap());
    forged.insert("events/context.jsonl".into(), text.into_bytes());
    resign(&mut forged);
    assert!(
        fails(&forged).starts_with("events/context.jsonl: event 4: not included"),
        "{}",
        fails(&forged)
    );
}

fn arb_log() -> impl Strategy<Value = Vec<(i64, u8, u8, u8)>> {
    proptest::collection::vec((0..30i64, 0..12u8, 0..3u8, 0..3u8), 1..40)
}

const ACTIONS: [&str; 12] = [
    "user.create",
    "user.disable",
    "group.create",
    "review.create",
    "review.keep",
    "access.approve",
    "grant.expire",
    "ssh.session.start",
    "ssh.session.end",
    "policy.apply",
    "auth.login",
    "passkey.register",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Recomputing from any bundle equals the server's result over the whole log.
    #[test]
    fn recomputing_from_the_bundle_equals_the_servers_result(raw in arb_log(), cut in 0..30i64) {
        let mut rows = raw;
        rows.sort_by_key(|r| r.0);
        let log: Vec<AuditEvent> = rows.iter().enumerate().map(|(i, (minute, action, who, thing))| {
            let name = ["alice", "bob", "carol"][usize::from(*who)];
            let details = json!({"session": format!("s{thing}"), "grant": format!("g{thing}"),
                "requester": name, "group": "ops", "expires_at": "2026-09-21T14:30:00.000Z",
                "version": thing, "tests": thing, "items": [thing], "scope": "groups:*"});
            event(i, T0 + minute * MIN, json!({"kind": "user", "name": name, "token_id": "session:x"}),
                ACTIONS[usize::from(*action)], &format!("group:g{thing}"), details)
        }).collect();
        let period = Period::recorded(T0 + cut * MIN, T0 + 31 * MIN).unwrap();
        let ev = evidence(&log, period, params());
        let files = bundle::build(ev, &key()).unwrap();
        let verified = check(&files).unwrap();
        let stated: Vec<TestResult> = serde_json::from_slice(&files["results.json"]).unwrap();
        let recomputed: Vec<TestResult> = verified.results.iter().map(|r| TestResult { items: Vec::new(), ..r.clone() }).collect();
        prop_assert_eq!(&recomputed, &stated);
        // And the populations in the CSVs are the recomputed ones.
        for r in &verified.results {
            let csv = String::from_utf8(files[&format!("population/{}.csv", r.id)].clone()).unwrap();
            prop_assert_eq!(csv.lines().count() as u64, r.population + 1);
        }
    }
}

/// The OSCAL document, checked by compliance-trestle, whose models are generated from NIST's
/// published OSCAL JSON schema (unknown fields refused, required ones, types, UUID and token
/// patterns enforced).
#[test]
fn the_oscal_document_is_valid_against_nists_schema() {
    let files = bundle::build(evidence(&journey(), period(), params()), &key()).unwrap();
    // Its keys are sorted at every level, so a verifier built with or without serde_json's
    // `preserve_order` (the workspace's tests build with it) makes the same bytes.
    let text = &files["oscal/assessment-results.json"];
    let mut sorted: Value = serde_json::from_slice(text).unwrap();
    sorted.sort_all_objects();
    assert!(
        serde_json::to_vec_pretty(&sorted).unwrap() == *text,
        "the OSCAL document's keys are not in sorted order"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("assessment-results.json");
    std::fs::write(&path, &files["oscal/assessment-results.json"]).unwrap();
    let script = "import json, sys\n\
        from trestle.oscal.assessment_results import AssessmentResults\n\
        doc = json.load(open(sys.argv[1]))\n\
        assert list(doc) == ['assessment-results'], list(doc)\n\
        AssessmentResults.parse_obj(doc['assessment-results'])\n\
        print('valid')\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .expect("python3 with compliance-trestle (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");
}
