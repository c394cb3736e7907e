//! Selections: the events of a range that match a filter, each with its inclusion proof in
//! one signed checkpoint. Made here, then tampered with: every change to an event, its proof
//! or the checkpoint is named; an event outside the filter is refused.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use warden_audit::{
    AuditEvent, Checkpoint, ExportLine, Frontier, Hash, NodeId, Outcome, SELECTION_FORMAT,
    Selection, SigningKey, inclusion_proof, verify, verify_events, write_selected_event_line,
};

const ORIGIN: &str = "test.example/audit";

fn key() -> SigningKey {
    SigningKey::from_seed(ORIGIN, &[3u8; 32]).unwrap()
}

/// Event `seq`: dana and erin take turns; every third is a denial.
fn event(seq: u64) -> AuditEvent {
    let who = if seq.is_multiple_of(2) {
        "dana"
    } else {
        "erin"
    };
    AuditEvent {
        seq,
        time: 1_700_000_000_000 + i64::try_from(seq).unwrap(),
        actor: json!({ "kind": "user", "name": who }),
        actor_label: format!("user:{who}"),
        auth: "web_session".into(),
        action: if seq.is_multiple_of(3) {
            "user.disable"
        } else {
            "user.create"
        }
        .into(),
        target: format!("user:u{seq}"),
        outcome: if seq.is_multiple_of(3) {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        reason: None,
        request_id: format!("r{seq}"),
        source: None,
        details: json!({}),
    }
}

/// A log of `total` events, signed at `signed`, and its nodes.
fn log(total: u64) -> (BTreeMap<NodeId, Hash>, Hash) {
    let mut tree = Frontier::new();
    let mut nodes = BTreeMap::new();
    for seq in 1..=total {
        nodes.extend(tree.push(event(seq).leaf_hash()));
    }
    (nodes, tree.root())
}

fn line(l: &ExportLine) -> String {
    serde_json::to_string(l).unwrap()
}

/// The selection of `first..=last` by `filter`, proven in the log of `total` events.
fn selection(total: u64, first: u64, last: u64, filter: &Selection) -> Vec<String> {
    let (nodes, root) = log(total);
    let note = key().sign(&Checkpoint {
        origin: ORIGIN.into(),
        size: total,
        root,
    });
    let mut lines = vec![
        line(&ExportLine::Header {
            format: SELECTION_FORMAT.into(),
            origin: ORIGIN.into(),
            first_seq: first,
            last_seq: last,
            filter: Some(filter.clone()),
        }),
        line(&ExportLine::Checkpoint {
            note,
            consistency: Vec::new(),
        }),
    ];
    for seq in first..=last {
        let e = event(seq);
        if filter.mismatch(&e).is_none() {
            lines.push(selected(&e, total, &nodes));
        }
    }
    lines
}

fn selected(e: &AuditEvent, size: u64, nodes: &BTreeMap<NodeId, Hash>) -> String {
    let path = inclusion_proof(e.seq - 1, size, |id| nodes.get(&id).copied()).unwrap();
    let mut out = Vec::new();
    write_selected_event_line(&mut out, e, &path);
    String::from_utf8(out).unwrap()
}

fn dana_denied() -> Selection {
    Selection {
        actor: Some("user:dana".into()),
        outcome: Some("denied".into()),
        ..Selection::default()
    }
}

/// Verifies both ways, plain and reading the events, which must agree.
fn check(lines: &[String]) -> Result<warden_audit::Report, warden_audit::VerifyError> {
    let text = lines.join("\n");
    let plain = verify(text.as_bytes(), &key().verifier());
    let mut events = Vec::new();
    let read = verify_events(text.as_bytes(), &key().verifier(), |e| events.push(e));
    assert_eq!(plain, read);
    if let Ok(report) = &read {
        assert_eq!(events.len() as u64, report.events);
    }
    plain
}

#[test]
fn a_faithful_selection_verifies_and_says_it_is_one() {
    // dana (even) and denied (a multiple of 3): 6, 12, 18 of 4..=20.
    let lines = selection(30, 4, 20, &dana_denied());
    assert_eq!(lines.len(), 2 + 3);
    let report = check(&lines).unwrap();
    assert_eq!(
        (
            report.events,
            report.first_seq,
            report.last_seq,
            report.signed_size
        ),
        (3, 4, 20, 30)
    );
    assert_eq!(report.selection, Some(dana_denied()));
    // An empty selection is a selection of nothing, still signed.
    let none = Selection {
        actor: Some("user:nobody".into()),
        ..Selection::default()
    };
    assert_eq!(check(&selection(30, 1, 30, &none)).unwrap().events, 0);
}

#[test]
fn each_tampering_is_named() {
    let lines = selection(30, 1, 30, &dana_denied());
    let (nodes, _) = log(30);
    let at = |seq: u64| {
        lines
            .iter()
            .position(|l| l.contains(&format!("\"seq\":{seq},")))
            .unwrap()
    };

    // An edited event no longer matches its leaf hash.
    let mut edited = lines.clone();
    edited[at(12)] = edited[at(12)].replace("user:u12", "user:mallory");
    assert_eq!(
        check(&edited).unwrap_err().to_string(),
        "event 12: its content does not match the leaf hash the log recorded"
    );

    // With the leaf hash recomputed, its inclusion proof no longer leads to the checkpoint.
    let mut forged = event(12);
    forged.target = "user:mallory".into();
    let mut recomputed = lines.clone();
    let path = inclusion_proof(11, 30, |id| nodes.get(&id).copied()).unwrap();
    let mut out = Vec::new();
    write_selected_event_line(&mut out, &forged, &path);
    recomputed[at(12)] = String::from_utf8(out).unwrap();
    assert_eq!(
        check(&recomputed).unwrap_err().to_string(),
        "event 12: not in the signed log of 30 events: its inclusion proof does not lead to the checkpoint"
    );

    // A real, proven event that the filter does not select.
    let mut widened = lines.clone();
    widened.insert(at(12), selected(&event(9), 30, &nodes));
    assert_eq!(
        check(&widened).unwrap_err().to_string(),
        "event 9: does not match the selection: its actor is `user:erin`"
    );

    // Order, repeats, and the header's range.
    let mut swapped = lines.clone();
    swapped.swap(at(6), at(12));
    assert_eq!(
        check(&swapped).unwrap_err().to_string(),
        "event 6: out of order or repeated (after 12, line 4)"
    );
    let narrowed: Vec<String> = {
        let mut l = lines.clone();
        l[0] = l[0].replace("\"last_seq\":30", "\"last_seq\":20");
        l
    };
    assert_eq!(
        check(&narrowed).unwrap_err().to_string(),
        "event 24: outside the header's range 1 to 20"
    );

    // Without its proof; with another key; with a checkpoint short of the range.
    let mut bare = lines.clone();
    let cut = bare[at(18)].find(",\"inclusion\"").unwrap();
    bare[at(18)] = format!("{}}}", &bare[at(18)][..cut]);
    assert_eq!(
        check(&bare).unwrap_err().to_string(),
        format!(
            "line {}: a selection's event carries its inclusion proof",
            at(18) + 1
        )
    );
    let other = SigningKey::from_seed(ORIGIN, &[4u8; 32])
        .unwrap()
        .verifier();
    assert_eq!(
        verify(lines.join("\n").as_bytes(), &other)
            .unwrap_err()
            .to_string(),
        format!("line 2: checkpoint is not signed by key `{other}`")
    );
    let mut short = selection(30, 1, 30, &dana_denied());
    short[0] = short[0].replace("\"last_seq\":30", "\"last_seq\":31");
    assert_eq!(
        check(&short).unwrap_err().to_string(),
        "no signed checkpoint covers events after 30"
    );

    // The header and the lines after it keep their forms.
    let mut unfiltered = lines.clone();
    unfiltered[0] = line(&ExportLine::Header {
        format: SELECTION_FORMAT.into(),
        origin: ORIGIN.into(),
        first_seq: 1,
        last_seq: 30,
        filter: None,
    });
    assert_eq!(
        check(&unfiltered).unwrap_err().to_string(),
        "line 1: a selection's header names its filter"
    );
    let mut prefixed = lines.clone();
    prefixed[1] = line(&ExportLine::Prefix {
        size: 0,
        frontier: Vec::new(),
    });
    assert_eq!(
        check(&prefixed).unwrap_err().to_string(),
        "line 2: the second line of a selection must be its checkpoint"
    );
    let mut mixed = lines.clone();
    mixed.push(lines[1].clone());
    assert_eq!(
        check(&mixed).unwrap_err().to_string(),
        format!(
            "line {}: only events may follow the checkpoint",
            mixed.len()
        )
    );
}

/// A range export's events carry no proofs, and its header no filter: one format is not
/// passed off as the other.
#[test]
fn a_range_export_does_not_take_a_selections_parts() {
    let lines = selection(8, 1, 8, &Selection::default());
    let mut as_range = lines.clone();
    as_range[0] = as_range[0].replace(SELECTION_FORMAT, warden_audit::FORMAT);
    assert_eq!(
        check(&as_range).unwrap_err().to_string(),
        "line 1: an export of a whole range has no filter"
    );
}

proptest! {
    /// Any one character changed in the checkpoint or an event line is caught.
    #[test]
    fn any_change_to_a_proven_line_is_detected(seed in any::<u64>()) {
        let mut lines = selection(16, 1, 16, &Selection { actor: Some("user:dana".into()), ..Selection::default() });
        let index = 1 + usize::try_from(seed % (lines.len() as u64 - 1)).unwrap();
        let mut changed = lines[index].clone();
        let pos = (seed / 17) as usize % changed.len();
        prop_assume!(changed.is_char_boundary(pos) && changed.is_char_boundary(pos + 1));
        let replacement = if changed.as_bytes()[pos] == b'1' { "2" } else { "1" };
        changed.replace_range(pos..pos + 1, replacement);
        prop_assume!(changed != lines[index]);
        lines[index] = changed;
        prop_assert!(check(&lines).is_err());
    }

    /// After a selection's header, anything at all is refused or verified, never a panic.
    #[test]
    fn any_body_after_a_selection_header_never_panics(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut text = selection(4, 1, 4, &Selection::default())[0].clone().into_bytes();
        text.push(b'\n');
        text.extend_from_slice(&body);
        let _ = verify(text.as_slice(), &key().verifier());
    }
}
