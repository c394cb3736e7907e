//! A recording at rest: unreadable without the KEK, bound to its name, and every alteration
//! (a flipped bit, a dropped, reordered or added segment, bytes after the end, a cut) is
//! named; any bytes at all are answered without a panic.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test"
)]

use proptest::prelude::*;
use warden_pki::seal::Kek;
use warden_proxy::recording::frames::{self, OUTPUT};
use warden_proxy::recording::sealed::{MAGIC, SEGMENT, SealedWriter};
use warden_proxy::recording::{OpenError, Recorder, Start, open};

fn kek(byte: &str) -> Kek {
    Kek::parse(&byte.repeat(32)).unwrap()
}

/// Writes `data` (in writes of `step` bytes) to `dir/NAME` and returns the file's bytes.
fn sealed(dir: &std::path::Path, name: &str, data: &[u8], step: usize) -> Vec<u8> {
    let path = dir.join(name);
    let mut w = SealedWriter::create(&path, &kek("11")).unwrap();
    for chunk in data.chunks(step.max(1)) {
        w.write(chunk).unwrap();
    }
    let (path, bytes, sha) = w.finish().unwrap();
    let file = std::fs::read(path).unwrap();
    assert_eq!(file.len() as u64, bytes);
    assert_eq!(sha.len(), 64);
    file
}

/// Where each segment starts, after the preamble.
fn segments(file: &[u8]) -> Vec<(usize, usize)> {
    let mut at = MAGIC.len()
        + file[MAGIC.len()..]
            .iter()
            .position(|b| *b == b'\n')
            .unwrap()
        + 1;
    let mut out = Vec::new();
    while at < file.len() {
        let len = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        out.push((at, 4 + len));
        at += 4 + len;
    }
    out
}

#[test]
fn a_copy_without_the_kek_is_noise() {
    let dir = tempfile::tempdir().unwrap();
    let secret = b"root password is hunter2 and the db key is 0xdeadbeef\n".repeat(3000);
    let file = sealed(dir.path(), "a.rec", &secret, 4096);
    assert!(!file.windows(7).any(|w| w == b"hunter2"));
    assert!(file.len() > secret.len() && file.len() < secret.len() + 1024);
    let opened = open(&file, "a.rec", &kek("11")).unwrap();
    assert!(opened.complete);
    assert_eq!(opened.plaintext.as_slice(), secret.as_slice());
    assert_eq!(
        open(&file, "a.rec", &kek("22")).unwrap_err(),
        OpenError::Key
    );
    // Renamed: another recording's name does not open it.
    assert_eq!(
        open(&file, "b.rec", &kek("11")).unwrap_err(),
        OpenError::Key
    );
    assert_eq!(
        OpenError::Key.to_string(),
        "its data key does not open: another key-encryption key, or the file was renamed or altered"
    );
}

#[test]
fn every_alteration_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..(SEGMENT * 3 + 100))
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let file = sealed(dir.path(), "s.rec", &data, 10_000);
    let segs = segments(&file);
    assert_eq!(segs.len(), 4);
    let k = kek("11");

    // A flipped bit inside the second segment.
    let mut flipped = file.clone();
    flipped[segs[1].0 + 100] ^= 1;
    let err = open(&flipped, "s.rec", &k).unwrap_err();
    assert_eq!(err, OpenError::Segment(segs[1].0 as u64));
    assert_eq!(
        err.to_string(),
        format!(
            "damaged at byte {}: a segment does not authenticate",
            segs[1].0
        )
    );

    // The second segment dropped.
    let mut dropped = file[..segs[1].0].to_vec();
    dropped.extend_from_slice(&file[segs[2].0..]);
    assert_eq!(
        open(&dropped, "s.rec", &k).unwrap_err(),
        OpenError::Segment(segs[1].0 as u64)
    );

    // Two segments swapped.
    let mut swapped = file[..segs[1].0].to_vec();
    swapped.extend_from_slice(&file[segs[2].0..segs[2].0 + segs[2].1]);
    swapped.extend_from_slice(&file[segs[1].0..segs[1].0 + segs[1].1]);
    swapped.extend_from_slice(&file[segs[3].0..]);
    assert!(matches!(
        open(&swapped, "s.rec", &k).unwrap_err(),
        OpenError::Segment(_)
    ));

    // Cut after the third segment: what was sealed reads, and it says it was cut short.
    let cut = open(&file[..segs[3].0], "s.rec", &k).unwrap();
    assert!(!cut.complete);
    assert_eq!(cut.plaintext.as_slice(), &data[..SEGMENT * 3]);

    // Cut inside a segment.
    assert_eq!(
        open(&file[..segs[2].0 + 10], "s.rec", &k).unwrap_err(),
        OpenError::Framing(segs[2].0 as u64)
    );

    // A segment appended after the final one (the second, again).
    let mut appended = file.clone();
    appended.extend_from_slice(&file[segs[1].0..segs[1].0 + segs[1].1]);
    assert!(matches!(
        open(&appended, "s.rec", &k).unwrap_err(),
        OpenError::Segment(_) | OpenError::Trailing(_)
    ));

    // A length past the largest segment.
    let mut long = file.clone();
    long[segs[0].0..segs[0].0 + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        open(&long, "s.rec", &k).unwrap_err().to_string(),
        format!(
            "damaged at byte {}: a segment's length is out of range",
            segs[0].0
        )
    );

    // Not a recording at all.
    assert_eq!(
        open(b"{\"version\": 2}\n", "s.rec", &k).unwrap_err(),
        OpenError::NotARecording
    );
}

#[test]
fn binary_output_survives_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let k = std::sync::Arc::new(kek("33"));
    let mut r = Recorder::create(
        dir.path(),
        "bin",
        &Start::Exec {
            command: "tar c /etc".into(),
            pty: None,
        },
        &serde_json::json!({}),
        &k,
    )
    .unwrap();
    let tar: Vec<u8> = (0..200_000u32)
        .map(|i| u8::try_from((i.wrapping_mul(2_654_435_761) >> 13) & 0xff).unwrap())
        .collect();
    for chunk in tar.chunks(32_768) {
        r.output(chunk).unwrap();
    }
    let recorded = r.finish().unwrap();
    assert!(recorded.transcript.is_none());
    let name = recorded.path.file_name().unwrap().to_str().unwrap();
    assert_eq!(name, "bin.rec");
    let opened = open(&std::fs::read(&recorded.path).unwrap(), name, &k).unwrap();
    let mut back = Vec::new();
    for frame in frames::frames(&opened.plaintext) {
        let frame = frame.unwrap();
        if frame.kind == OUTPUT {
            back.extend_from_slice(frame.data);
        }
    }
    assert_eq!(back, tar);
}

#[test]
fn damaged_frames_are_named() {
    let head = frames::head(b'o', std::time::Duration::from_millis(1), 10);
    let mut short = head.to_vec();
    short.extend_from_slice(b"abc");
    assert_eq!(
        frames::frames(&short)
            .next()
            .unwrap()
            .unwrap_err()
            .to_string(),
        "frame 1 is cut short"
    );
    let mut unknown = frames::head(b'?', std::time::Duration::ZERO, 0).to_vec();
    unknown.extend_from_slice(&head);
    assert_eq!(
        frames::frames(&unknown)
            .next()
            .unwrap()
            .unwrap_err()
            .to_string(),
        "frame 1 has an unknown kind"
    );
    assert_eq!(
        frames::asciicast(&frames::head(b'o', std::time::Duration::ZERO, 0))
            .unwrap_err()
            .to_string(),
        "the header is missing or not JSON"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn whatever_is_written_reads_back(
        data in proptest::collection::vec(any::<u8>(), 0..(3 * SEGMENT)),
        step in 1usize..20_000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let file = sealed(dir.path(), "p.rec", &data, step);
        let opened = open(&file, "p.rec", &kek("11")).unwrap();
        prop_assert!(opened.complete);
        prop_assert_eq!(opened.plaintext.as_slice(), data.as_slice());
    }

    #[test]
    fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..2000), magic in any::<bool>()) {
        let mut file = if magic { MAGIC.to_vec() } else { Vec::new() };
        file.extend_from_slice(&bytes);
        let _ = open(&file, "x.rec", &kek("11"));
        for frame in frames::frames(&bytes) {
            let _ = frame;
        }
        let _ = frames::asciicast(&bytes);
    }

    #[test]
    fn any_flipped_byte_of_a_real_file_is_caught(at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let dir = tempfile::tempdir().unwrap();
        let file = sealed(dir.path(), "f.rec", &b"some output\r\n".repeat(9000), 777);
        let mut damaged = file.clone();
        let i = at.index(damaged.len());
        damaged[i] ^= 1 << bit;
        prop_assert!(
            open(&damaged, "f.rec", &kek("11")).is_err(),
            "byte {} flipped unnoticed",
            i
        );
    }
}

#[test]
fn a_terminal_transcript_is_rendered_from_the_sealed_frames() {
    let dir = tempfile::tempdir().unwrap();
    let k = std::sync::Arc::new(kek("44"));
    let start = Start::Shell {
        width: 20,
        height: 5,
        term: Some("xterm".into()),
    };
    let mut r = Recorder::create(dir.path(), "t", &start, &serde_json::json!({}), &k).unwrap();
    // Enough output to cross several segments, a resize, and a line drawn over.
    for n in 0..20_000 {
        r.output(format!("line {n}\r\n").as_bytes()).unwrap();
    }
    r.resize(40, 10).unwrap();
    r.output(b"a line longer than twenty columns, after the resize\r\n")
        .unwrap();
    r.output(b"draft\rfinal\r\n").unwrap();
    let recorded = r.finish().unwrap();
    let (path, sha) = recorded.transcript.unwrap();
    let file = std::fs::read(&path).unwrap();
    assert_eq!(
        format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&file)),
        sha
    );
    let name = path.file_name().unwrap().to_str().unwrap();
    let text = String::from_utf8(open(&file, name, &k).unwrap().plaintext.to_vec()).unwrap();
    assert!(
        text.contains("line 19999\n"),
        "{}",
        &text[text.len() - 300..]
    );
    assert!(
        text.contains("a line longer than twenty columns, afte"),
        "{}",
        &text[text.len() - 300..]
    );
    assert!(text.ends_with("final\n"), "{}", &text[text.len() - 100..]);
    // Ten thousand lines of scrollback are kept, older ones dropped.
    assert!(!text.contains("line 100\n"));
    // The streaming reader and the whole-file reader agree.
    let mut streamed = Vec::new();
    let complete = warden_proxy::recording::sealed::read_segments(&recorded.path, &k, |s| {
        streamed.extend_from_slice(s)
    })
    .unwrap();
    assert!(complete);
    let whole = open(&std::fs::read(&recorded.path).unwrap(), "t.rec", &k).unwrap();
    assert_eq!(streamed, whole.plaintext.to_vec());
}
