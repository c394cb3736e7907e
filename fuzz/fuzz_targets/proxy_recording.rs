//! What a host sends and a user types reaches the recorder unfiltered: any channel start (pty
//! sizes, TERM, commands, subsystem names) and any bytes must record without a panic, into a
//! file whose hash is the one reported and whose every line is JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use warden_proxy::recording::{Recorder, Start};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let word = |at: usize| {
        rest.get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let text = String::from_utf8_lossy(rest.get(8..24).unwrap_or_default()).into_owned();
    let start = match kind % 4 {
        0 => Start::Shell { width: word(0), height: word(4), term: Some(text) },
        1 => Start::Shell { width: word(0), height: word(4), term: None },
        2 => Start::Exec { command: text, pty: (kind & 4 != 0).then(|| (word(0), word(4), "xterm".into())) },
        _ => Start::Subsystem(text),
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(mut recorder) = Recorder::create(dir.path(), "fuzz", &start, &serde_json::Value::Null) else {
        return;
    };
    // The rest, in chunks: a length byte whose top bit says input or output.
    let mut body = rest.get(24..).unwrap_or_default();
    while let Some((&head, tail)) = body.split_first() {
        let len = usize::from(head & 0x7f).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        let _ = if head & 0x80 == 0 { recorder.output(chunk) } else { recorder.input(chunk) };
        body = next;
    }
    let recorded = recorder.finish().expect("finish");
    let bytes = std::fs::read(&recorded.path).expect("read");
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(sha, recorded.sha256);
    for line in String::from_utf8(bytes).expect("UTF-8").lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("a JSON line");
    }
});
