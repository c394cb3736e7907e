//! Audit core benchmark: offline verification of a 1,000,000-event export, inclusion proofs
//! at 1,000,000 events, and the offline verification of a selection of every tenth event,
//! each with its proof. Run: `cargo run --release -p warden-audit --example bench`.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary: failures abort it"
)]

use std::time::Instant;

use serde_json::json;
use warden_audit::{
    AuditEvent, Checkpoint, ExportLine, FORMAT, Frontier, Hash, NodeId, Outcome, SELECTION_FORMAT,
    Selection, SigningKey, event_line, inclusion_proof, verify, verify_inclusion,
    write_selected_event_line,
};

type Nodes = std::collections::BTreeMap<NodeId, Hash>;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let key = SigningKey::from_seed("bench/audit", &[1u8; 32]).unwrap();
    let mut tree = Frontier::new();
    let mut nodes = Nodes::new();
    let mut lines: Vec<u8> = Vec::new();
    let mut events = Vec::with_capacity(1024);
    let t = Instant::now();
    for seq in 1..=n {
        let e = event(seq);
        let leaf = e.leaf_hash();
        nodes.extend(tree.push(leaf));
        events.push(event_line(&e, &leaf));
        if events.len() == 1024 || seq == n {
            for line in events.drain(..) {
                lines.extend_from_slice(line.as_bytes());
                lines.push(b'\n');
            }
        }
    }
    println!(
        "built {n} events ({:.1} MB of JSONL) in {:.2} s",
        lines.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let note = key.sign(&Checkpoint {
        origin: "bench/audit".into(),
        size: n,
        root: tree.root(),
    });
    let signed = note.clone();
    let mut file = Vec::new();
    for line in [
        ExportLine::Header {
            format: FORMAT.into(),
            origin: "bench/audit".into(),
            first_seq: 1,
            last_seq: n,
            filter: None,
        },
        ExportLine::Prefix {
            size: 0,
            frontier: Vec::new(),
        },
        ExportLine::Checkpoint {
            note,
            consistency: Vec::new(),
        },
    ] {
        serde_json::to_writer(&mut file, &line).unwrap();
        file.push(b'\n');
    }
    file.extend_from_slice(&lines);

    let t = Instant::now();
    let report = verify(file.as_slice(), &key.verifier()).expect("verifies");
    let took = t.elapsed();
    println!(
        "verify {} events: {:.2} s ({:.0} events/s)",
        report.events,
        took.as_secs_f64(),
        report.events as f64 / took.as_secs_f64()
    );

    let root = tree.root();
    let samples = 10_000u64;
    let t = Instant::now();
    for i in 0..samples {
        let index = (i * 7919) % n;
        let path = inclusion_proof(index, n, |id| nodes.get(&id).copied()).unwrap();
        let leaf = *nodes.get(&NodeId { level: 0, index }).unwrap();
        assert!(verify_inclusion(index, n, &leaf, &path, &root));
    }
    let per = t.elapsed() / u32::try_from(samples).unwrap_or(u32::MAX);
    println!(
        "inclusion proof at {n} events (build from stored nodes + verify): {:.1} µs each",
        per.as_secs_f64() * 1e6
    );

    // A selection of every tenth event, each line with its inclusion proof.
    let t = Instant::now();
    let filter = Selection {
        actor: Some("user:alice".into()),
        ..Selection::default()
    };
    let mut file = Vec::new();
    for line in [
        ExportLine::Header {
            format: SELECTION_FORMAT.into(),
            origin: "bench/audit".into(),
            first_seq: 1,
            last_seq: n,
            filter: Some(filter),
        },
        ExportLine::Checkpoint {
            note: signed,
            consistency: Vec::new(),
        },
    ] {
        serde_json::to_writer(&mut file, &line).unwrap();
        file.push(b'\n');
    }
    for seq in (10..=n).step_by(10) {
        let path = inclusion_proof(seq - 1, n, |id| nodes.get(&id).copied()).unwrap();
        write_selected_event_line(&mut file, &event(seq), &path);
        file.push(b'\n');
    }
    println!(
        "built a selection of {} events ({:.1} MB with proofs) in {:.2} s",
        n / 10,
        file.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let report = verify(file.as_slice(), &key.verifier()).expect("the selection verifies");
    let took = t.elapsed();
    println!(
        "verify a selection of {} events: {:.2} s ({:.0} events/s)",
        report.events,
        took.as_secs_f64(),
        report.events as f64 / took.as_secs_f64()
    );
}

/// Event `seq` of the benchmark's log: alice creates user `u{seq}`.
fn event(seq: u64) -> AuditEvent {
    AuditEvent {
        seq,
        time: 1_796_000_000_000 + i64::try_from(seq).unwrap_or(0),
        actor: json!({ "kind": "user", "name": "alice", "role": "admin", "token_id": "0123456789abcdef0123456789abcdef" }),
        actor_label: "user:alice".into(),
        auth: "api_token".into(),
        action: "user.create".into(),
        target: format!("user:u{seq}"),
        outcome: Outcome::Success,
        reason: None,
        request_id: "0192f0c4a1b27c3e8d5f6a7b8c9d0e1f".into(),
        source: Some("127.0.0.1".into()),
        details: json!({ "display_name": format!("User {seq}"), "email": null }),
    }
}
