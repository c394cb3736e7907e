//! The offline verifier against exports made here and then tampered with in every way the
//! issue names: edit, delete, swap, insert, truncate, wrong key, garbage.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use warden_audit::{
    AuditEvent, Checkpoint, ExportLine, FORMAT, Frontier, HexHash, NodeId, Outcome, SigningKey,
    VerifyError, consistency_proof, event_line, leaf_hash, verify, verify_events,
};

const ORIGIN: &str = "test.example/audit";

fn key() -> SigningKey {
    SigningKey::from_seed(ORIGIN, &[3u8; 32]).unwrap()
}

fn event(seq: u64) -> AuditEvent {
    AuditEvent {
        seq,
        time: 1_700_000_000_000 + i64::try_from(seq).unwrap(),
        actor: json!({ "kind": "operator" }),
        actor_label: "operator".into(),
        auth: "unix_socket".into(),
        action: "user.create".into(),
        target: format!("user:u{seq}"),
        outcome: Outcome::Success,
        reason: None,
        request_id: format!("r{seq}"),
        source: None,
        details: json!({ "display_name": format!("User {seq}") }),
    }
}

/// An export of events `first..=last` out of a log of `total`, with checkpoints at `signed`.
fn export(total: u64, first: u64, last: u64, signed: &[u64]) -> Vec<String> {
    let mut tree = Frontier::new();
    let mut nodes = BTreeMap::new();
    let mut roots = vec![tree.root()];
    let mut prefix = None;
    for seq in 1..=total {
        if seq == first {
            prefix = Some(tree.clone());
        }
        nodes.extend(tree.push(event(seq).leaf_hash()));
        roots.push(tree.root());
    }
    let prefix = prefix.unwrap_or_else(|| tree.clone());
    let k = key();
    let mut lines = vec![
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
    ];
    for &size in signed {
        let note = k.sign(&Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: roots[usize::try_from(size).unwrap()],
        });
        let consistency = if size > last {
            consistency_proof(last, size, |id: NodeId| nodes.get(&id).copied())
                .unwrap()
                .into_iter()
                .map(HexHash)
                .collect()
        } else {
            Vec::new()
        };
        lines.push(ExportLine::Checkpoint { note, consistency });
    }
    let mut text: Vec<String> = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap())
        .collect();
    for seq in first..=last {
        let e = event(seq);
        text.push(event_line(&e, &e.leaf_hash()));
    }
    text
}

/// Verifies the export both ways, plain and reading the events, which must agree.
fn check(lines: &[String]) -> Result<warden_audit::Report, VerifyError> {
    let text = lines.join("\n");
    let plain = verify(text.as_bytes(), &key().verifier());
    let mut events = Vec::new();
    let read = verify_events(text.as_bytes(), &key().verifier(), |e| events.push(e));
    assert_eq!(plain, read);
    if let Ok(report) = &read {
        let expected: Vec<AuditEvent> = (report.first_seq..=report.last_seq).map(event).collect();
        assert_eq!(events, expected);
    }
    plain
}

fn edit_event(lines: &mut [String], seq: u64, f: impl FnOnce(&mut serde_json::Value)) {
    for line in lines.iter_mut() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "event" && v["event"]["seq"] == seq {
            f(&mut v);
            let e: AuditEvent = serde_json::from_value(v["event"].clone()).unwrap();
            let recorded = HexHash::try_from(v["leaf_hash"].as_str().unwrap().to_owned()).unwrap();
            *line = event_line(&e, &recorded.0);
            return;
        }
    }
    panic!("no event {seq}");
}

#[test]
fn a_faithful_export_verifies() {
    let report = check(&export(20, 1, 20, &[5, 16, 20])).unwrap();
    assert_eq!(
        (report.events, report.checkpoints, report.signed_size),
        (20, 3, 20)
    );
    // A middle range, signed past its end, verifies through the consistency proof.
    let report = check(&export(40, 8, 25, &[10, 33])).unwrap();
    assert_eq!(
        (report.first_seq, report.last_seq, report.signed_size),
        (8, 25, 33)
    );
}

#[test]
fn an_edited_event_is_named() {
    let mut lines = export(20, 1, 20, &[20]);
    edit_event(&mut lines, 7, |v| {
        v["event"]["target"] = json!("user:mallory")
    });
    assert_eq!(
        check(&lines).unwrap_err().to_string(),
        "event 7: its content does not match the leaf hash the log recorded"
    );
}

#[test]
fn an_edit_with_a_recomputed_leaf_hash_is_caught_at_the_next_checkpoint() {
    let mut lines = export(20, 1, 20, &[5, 12, 20]);
    edit_event(&mut lines, 7, |v| {
        v["event"]["outcome"] = json!("denied");
        let e: AuditEvent = serde_json::from_value(v["event"].clone()).unwrap();
        v["leaf_hash"] = json!(String::from(HexHash(e.leaf_hash())));
    });
    assert_eq!(
        check(&lines).unwrap_err().to_string(),
        "events 6 to 12 do not match the signed checkpoint of size 12: the log was altered in this range"
    );
}

#[test]
fn deleted_swapped_and_inserted_events_are_named() {
    let lines = export(20, 1, 20, &[20]);
    let position = |seq: u64| {
        lines
            .iter()
            .position(|l| l.contains(&format!("\"seq\":{seq},")))
            .unwrap()
    };

    let mut deleted = lines.clone();
    deleted.remove(position(9));
    assert_eq!(
        check(&deleted).unwrap_err().to_string(),
        "event 9: missing (the next event in the file is 10)"
    );

    let mut swapped = lines.clone();
    swapped.swap(position(4), position(5));
    assert_eq!(
        check(&swapped).unwrap_err().to_string(),
        "event 4: missing (the next event in the file is 5)"
    );

    let mut inserted = lines.clone();
    inserted.insert(position(3), lines[position(3)].clone());
    assert_eq!(
        check(&inserted).unwrap_err().to_string(),
        format!(
            "event 3: out of order or repeated (expected 4, line {})",
            position(3) + 2
        )
    );
}

#[test]
fn truncation_wrong_keys_garbage_and_unsigned_tails() {
    let lines = export(20, 1, 20, &[20]);
    let truncated = &lines[..lines.len() - 3];
    assert_eq!(
        check(truncated).unwrap_err().to_string(),
        "export is truncated: the header announces events up to 20, the file ends after 17"
    );

    let other = SigningKey::from_seed(ORIGIN, &[4u8; 32])
        .unwrap()
        .verifier();
    let err = verify(lines.join("\n").as_bytes(), &other).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("line 3: checkpoint is not signed by key `{other}`")
    );

    let mut garbage = lines.clone();
    garbage[5] = "this is not json".into();
    assert!(
        check(&garbage)
            .unwrap_err()
            .to_string()
            .starts_with("line 6: not a valid export line: ")
    );

    let unsigned = export(20, 1, 20, &[15]);
    assert_eq!(
        check(&unsigned).unwrap_err().to_string(),
        "no signed checkpoint covers events after 15"
    );

    assert_eq!(
        check(&[]).unwrap_err().to_string(),
        "line 1: the export is empty"
    );
}

proptest! {
    #[test]
    fn verify_never_panics_on_any_input(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = verify(bytes.as_slice(), &key().verifier());
    }

    #[test]
    fn any_single_line_change_is_detected(seed in any::<u64>()) {
        let mut lines = export(12, 1, 12, &[6, 12]);
        let index = usize::try_from(seed % lines.len() as u64).unwrap();
        let mut changed = lines[index].clone();
        // Flip one character that matters: a digit, or a letter in a value.
        let pos = (seed / 13) as usize % changed.len();
        prop_assume!(changed.is_char_boundary(pos) && changed.is_char_boundary(pos + 1));
        let replacement = if changed.as_bytes()[pos] == b'1' { "2" } else { "1" };
        changed.replace_range(pos..pos + 1, replacement);
        prop_assume!(changed != lines[index]);
        lines[index] = changed;
        prop_assert!(check(&lines).is_err());
    }
}

/// An event the log recorded with a field this version does not know verifies (its bytes are
/// what was signed), but cannot be read for the recomputation: the export fails by line.
#[test]
fn an_event_that_does_not_read_fails_by_line_when_read() {
    let mut raws: Vec<String> = (1..=3).map(|seq| event(seq).canonical()).collect();
    raws[1] = raws[1].replacen("{\"action\"", "{\"a_new_field\":1,\"action\"", 1);
    let mut tree = Frontier::new();
    for raw in &raws {
        tree.push(leaf_hash(raw.as_bytes()));
    }
    let note = key().sign(&Checkpoint {
        origin: ORIGIN.into(),
        size: 3,
        root: tree.root(),
    });
    let mut lines: Vec<String> = [
        ExportLine::Header {
            format: FORMAT.into(),
            origin: ORIGIN.into(),
            first_seq: 1,
            last_seq: 3,
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
    ]
    .iter()
    .map(|l| serde_json::to_string(l).unwrap())
    .collect();
    for raw in &raws {
        let leaf = String::from(HexHash(leaf_hash(raw.as_bytes())));
        lines.push(format!(
            "{{\"type\":\"event\",\"leaf_hash\":\"{leaf}\",\"event\":{raw}}}"
        ));
    }
    let text = lines.join("\n");
    assert_eq!(
        verify(text.as_bytes(), &key().verifier()).unwrap().events,
        3
    );
    let mut read = 0;
    let err = verify_events(text.as_bytes(), &key().verifier(), |_| read += 1).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("line 5: not a valid event: unknown field `a_new_field`"),
        "{err}"
    );
    assert_eq!(read, 1, "only the events before it were handed on");
}
