//! The recorder takes whatever a host sends and a user types. For any channel start and any
//! bytes, cut anywhere (a character split between two packets included): the file's hash is
//! the one reported, it opens under the KEK, its output and input frames hold exactly the
//! bytes that crossed, the asciicast made from it is JSON whose `o` and `i` texts are the
//! streams decoded as a whole, resizes are `r` events, and a channel without a pty has the
//! output as its transcript. A terminal of any claimed size is emulated without exhausting
//! memory.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test")]

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use warden_pki::seal::Kek;
use warden_proxy::recording::frames::{self, INPUT, OUTPUT};
use warden_proxy::recording::{Recorder, Start, open};

fn kek() -> Kek {
    Kek::parse(&"42".repeat(32)).unwrap()
}

/// A recording's plaintext, opened as the server opens it.
fn plaintext(path: &std::path::Path) -> Vec<u8> {
    let name = path.file_name().unwrap().to_str().unwrap();
    let opened = open(&std::fs::read(path).unwrap(), name, &kek()).unwrap();
    assert!(opened.complete);
    opened.plaintext.to_vec()
}

/// A recording as asciicast text.
fn cast(path: &std::path::Path) -> String {
    frames::asciicast(&plaintext(path)).unwrap()
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn starts() -> impl Strategy<Value = Start> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            proptest::option::of("\\PC{0,12}")
        )
            .prop_map(|(width, height, term)| Start::Shell {
                width,
                height,
                term
            }),
        (
            "\\PC{0,40}",
            proptest::option::of((0u32..400, 0u32..200, "[a-z-]{1,12}"))
        )
            .prop_map(|(command, pty)| Start::Exec { command, pty }),
        "\\PC{0,16}".prop_map(Start::Subsystem),
        "[a-z0-9.]{1,20}:[0-9]{1,5}".prop_map(Start::Forward),
    ]
}

/// What reaches a recorder.
#[derive(Debug, Clone)]
enum Op {
    Input(Vec<u8>),
    Output(Vec<u8>),
    Resize(u32, u32),
}

/// Chunks of input or output (raw bytes or text, each cut at some point), and resizes to any
/// size a client may claim.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let resize = (any::<u32>(), any::<u32>(), 0u32..300, 0u32..300).prop_map(|(w, h, sw, sh)| {
        if w % 2 == 0 {
            Op::Resize(sw, sh)
        } else {
            Op::Resize(w, h)
        }
    });
    (
        chunks(),
        proptest::collection::vec((any::<prop::sample::Index>(), resize), 0..4),
    )
        .prop_map(|(chunks, resizes)| {
            let mut ops: Vec<Op> = chunks
                .into_iter()
                .map(|(input, bytes)| {
                    if input {
                        Op::Input(bytes)
                    } else {
                        Op::Output(bytes)
                    }
                })
                .collect();
            for (at, op) in resizes {
                ops.insert(at.index(ops.len() + 1), op);
            }
            ops
        })
}

/// Chunks of input (true) or output (false): raw bytes or text, each cut at some point.
fn chunks() -> impl Strategy<Value = Vec<(bool, Vec<u8>)>> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..48),
        "\\PC{0,24}".prop_map(String::into_bytes),
        // Terminal control sequences, as shells and full-screen programs send them.
        "(\\x1b\\[[0-9;?]{0,8}[A-Za-z]|\\r\\n|[a-zé€😀 ]){0,12}".prop_map(String::into_bytes),
    ];
    proptest::collection::vec((any::<bool>(), bytes, any::<prop::sample::Index>()), 0..24).prop_map(
        |ops| {
            ops.into_iter()
                .flat_map(|(input, bytes, cut)| {
                    let at = cut.index(bytes.len() + 1);
                    let (a, b) = bytes.split_at(at);
                    [(input, a.to_vec()), (input, b.to_vec())]
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_session_records_faithfully(start in starts(), ops in ops()) {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder = Recorder::create(dir.path(), "s", &start, &serde_json::json!({}), &std::sync::Arc::new(kek())).unwrap();
        let (mut typed, mut shown, mut sizes) = (Vec::new(), Vec::new(), Vec::new());
        for op in &ops {
            match op {
                Op::Input(bytes) => {
                    typed.extend_from_slice(bytes);
                    recorder.input(bytes).unwrap();
                }
                Op::Output(bytes) => {
                    shown.extend_from_slice(bytes);
                    recorder.output(bytes).unwrap();
                }
                Op::Resize(w, h) => {
                    sizes.push(format!("{w}x{h}"));
                    recorder.resize(*w, *h).unwrap();
                }
            }
        }
        let recorded = recorder.finish().unwrap();
        prop_assert_eq!(recorded.input_bytes, typed.len() as u64);
        prop_assert_eq!(recorded.output_bytes, shown.len() as u64);

        let file = std::fs::read(&recorded.path).unwrap();
        prop_assert_eq!(sha(&file), recorded.sha256.clone());
        prop_assert_eq!(file.len() as u64, recorded.bytes);
        let plain = plaintext(&recorded.path);
        let (mut raw_out, mut raw_in) = (Vec::new(), Vec::new());
        for frame in frames::frames(&plain) {
            let frame = frame.unwrap();
            match frame.kind {
                OUTPUT => raw_out.extend_from_slice(frame.data),
                INPUT => raw_in.extend_from_slice(frame.data),
                _ => {}
            }
        }
        let text = frames::asciicast(&plain).unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        prop_assert_eq!(&header["version"], 2);
        let (mut o, mut i, mut r) = (String::new(), String::new(), Vec::new());
        for line in lines {
            let event: (f64, String, String) = serde_json::from_str(line).unwrap();
            match event.1.as_str() {
                "o" => o.push_str(&event.2),
                "i" => i.push_str(&event.2),
                "r" => r.push(event.2),
                other => prop_assert!(false, "event code {other}"),
            }
        }
        let pty = match &start {
            Start::Shell { term, .. } => term.is_some(),
            Start::Exec { pty, .. } => pty.is_some(),
            Start::Subsystem(_) | Start::Forward(_) => false,
        };
        if matches!(start, Start::Subsystem(_) | Start::Forward(_)) {
            // A subsystem's or a forward's bytes are counted, not recorded.
            prop_assert!(o.is_empty() && i.is_empty() && r.is_empty());
            prop_assert!(recorded.transcript.is_none());
        } else {
            // Binary-safe: the frames hold the very bytes.
            prop_assert_eq!(&raw_out, &shown);
            prop_assert_eq!(&raw_in, &typed);
            prop_assert_eq!(&o, &String::from_utf8_lossy(&shown));
            prop_assert_eq!(&i, &String::from_utf8_lossy(&typed));
            prop_assert_eq!(&r, &sizes);
            if pty {
                let (path, hash) = recorded.transcript.clone().unwrap();
                prop_assert_eq!(sha(&std::fs::read(&path).unwrap()), hash);
                prop_assert!(String::from_utf8(plaintext(&path)).is_ok());
            } else {
                prop_assert!(recorded.transcript.is_none());
                prop_assert_eq!(frames::output_text(&plain).unwrap(), o);
            }
        }
    }
}

/// The `i` events' texts of a recording, in order.
fn inputs(path: &std::path::Path) -> Vec<String> {
    cast(path)
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e.get(1).is_some_and(|code| code == "i"))
        .filter_map(|e| e.get(2)?.as_str().map(str::to_owned))
        .collect()
}

/// A recorder for an interactive shell on an 80x24 xterm.
fn xterm(dir: &std::path::Path, name: &str) -> Recorder {
    let start = Start::Shell {
        width: 80,
        height: 24,
        term: Some("xterm".into()),
    };
    Recorder::create(
        dir,
        name,
        &start,
        &serde_json::json!({}),
        &std::sync::Arc::new(kek()),
    )
    .unwrap()
}

#[test]
fn secrets_typed_at_a_prompt_are_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = xterm(dir.path(), "s");
    r.output(b"$ ").unwrap();
    r.input(b"sudo -v\r").unwrap();
    r.output(b"sudo -v\r\n[sudo] password for alice: ").unwrap();
    // Typed a key at a time, as people do, then Enter.
    for b in b"hunter2" {
        r.input(&[*b]).unwrap();
    }
    r.input(b"\r").unwrap();
    r.output(b"\r\n$ ").unwrap();
    r.input(b"ssh db\r").unwrap();
    r.output(b"alice@db's password:").unwrap();
    r.input(b"s3cr3t-pass\rls\r").unwrap();
    r.output(b"\r\nfile\r\n$ ").unwrap();
    r.input(b"echo password: done\r").unwrap();
    let recorded = r.finish().unwrap();
    let cast = cast(&recorded.path);
    assert!(
        !cast.contains("hunter2") && !cast.contains("s3cr3t"),
        "{cast}"
    );
    assert_eq!(
        inputs(&recorded.path),
        [
            "sudo -v\r",
            "[redacted]",
            "\r",
            "ssh db\r",
            "[redacted]",
            "\rls\r",
            "echo password: done\r"
        ]
    );
    // The byte counts still say what crossed.
    assert_eq!(recorded.input_bytes, 8 + 7 + 1 + 7 + 15 + 20);
}

#[test]
fn a_coloured_prompt_redraws_and_all_still_redact() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = xterm(dir.path(), "c");
    // A coloured prompt, then a status line redrawn on the same line before the user types.
    r.output(b"\x1b[1;31mEnter passphrase for key '/k':\x1b[0m ")
        .unwrap();
    r.output(b"\x1b]0;title\x07\x1b[s\x1b[u").unwrap();
    r.input(b"correct horse\r").unwrap();
    r.output(b"\r\n$ ").unwrap();
    r.input(b"id\r").unwrap();
    let recorded = r.finish().unwrap();
    let cast = cast(&recorded.path);
    assert!(!cast.contains("correct horse"), "{cast}");
    assert_eq!(inputs(&recorded.path), ["[redacted]", "\r", "id\r"]);
    assert_eq!(recorded.redactions, 1);
}
