//! What a recording holds: frames of raw bytes with their time, binary-safe and cheap to
//! write; the asciicast v2 text players read is made from them on export.
//!
//! ```text
//! frame   kind (1 byte) ‖ microseconds since the start (u64 LE) ‖ length (u32 LE) ‖ data
//! kinds   h  the header, asciicast v2 JSON          o  output from the host
//!         i  input from the user                    r  a resize, two u32 LE (columns, rows)
//!         x  a secret typed at a prompt, kept out (no data)
//! ```

use std::time::Duration;

/// The header (asciicast v2 JSON).
pub const HEADER: u8 = b'h';
/// Output from the host.
pub const OUTPUT: u8 = b'o';
/// Input from the user.
pub const INPUT: u8 = b'i';
/// The user's terminal changed size.
pub const RESIZE: u8 = b'r';
/// A secret typed at a prompt, kept out of the recording.
pub const REDACTED: u8 = b'x';

/// What the asciicast shows in place of a redacted secret.
pub const REDACTION_MARK: &str = "[redacted]";

/// Bytes before a frame's data.
pub const FRAME_HEAD: usize = 13;

/// A frame's head for `len` bytes of `kind` at `at`; the data follows it. (Data longer than
/// 4 GiB is never handed over: channel packets are far smaller.)
pub fn head(kind: u8, at: Duration, len: usize) -> [u8; FRAME_HEAD] {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = u64::try_from(at.as_micros())
        .unwrap_or(u64::MAX)
        .to_le_bytes();
    let [l0, l1, l2, l3] = u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes();
    [kind, t0, t1, t2, t3, t4, t5, t6, t7, l0, l1, l2, l3]
}

/// One frame read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Its kind: one of the constants above.
    pub kind: u8,
    /// Microseconds since the recording began.
    pub at: u64,
    /// Its bytes.
    pub data: &'a [u8],
}

/// Why frames do not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame runs past the end.
    #[error("frame {0} is cut short")]
    Short(usize),
    /// A frame of no known kind.
    #[error("frame {0} has an unknown kind")]
    Kind(usize),
    /// The first frame is not a header, or the header is not JSON.
    #[error("the header is missing or not JSON")]
    Header,
    /// A resize frame without its two sizes.
    #[error("frame {0} is a resize without a size")]
    Resize(usize),
}

/// The frames of a recording's plaintext, in order.
pub fn frames(plaintext: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, FrameError>> {
    let mut rest = plaintext;
    let mut n = 0usize;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        n += 1;
        let Some((head, body)) = rest.split_at_checked(FRAME_HEAD) else {
            rest = &[];
            return Some(Err(FrameError::Short(n)));
        };
        let kind = head.first().copied().unwrap_or_default();
        let at = head
            .get(1..9)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        let len = head
            .get(9..13)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes) as usize;
        let Some((data, after)) = body.split_at_checked(len) else {
            rest = &[];
            return Some(Err(FrameError::Short(n)));
        };
        rest = after;
        if ![HEADER, OUTPUT, INPUT, RESIZE, REDACTED].contains(&kind) {
            rest = &[];
            return Some(Err(FrameError::Kind(n)));
        }
        Some(Ok(Frame { kind, at, data }))
    })
}

/// How many bytes at the start of `buffer` are whole frames (the rest waits for more).
pub fn complete(buffer: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(head) = buffer.get(at..at + FRAME_HEAD) {
        let len = head
            .get(9..13)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes) as usize;
        if buffer.len() < at + FRAME_HEAD + len {
            break;
        }
        at += FRAME_HEAD + len;
    }
    at
}

/// A resize frame's columns and rows.
pub fn resize_data(width: u32, height: u32) -> [u8; 8] {
    let [a, b, c, d] = width.to_le_bytes();
    let [e, f, g, h] = height.to_le_bytes();
    [a, b, c, d, e, f, g, h]
}

/// A resize frame's columns and rows.
pub fn resize_size(data: &[u8]) -> Option<(u32, u32)> {
    let w = data.get(..4)?.try_into().ok().map(u32::from_le_bytes)?;
    let h = data.get(4..8)?.try_into().ok().map(u32::from_le_bytes)?;
    Some((w, h))
}

/// Bytes to text chunk by chunk: a character split between two chunks is held back and
/// joined, so the text is what decoding the whole stream would give (invalid bytes become
/// U+FFFD, as `String::from_utf8_lossy` makes them).
#[derive(Debug, Default)]
pub struct Utf8Stream {
    /// The start of a character whose remaining bytes have not arrived yet.
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `data`, after what was held back.
    pub fn decode(&mut self, data: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(data);
        let mut text = String::with_capacity(bytes.len());
        let mut rest: &[u8] = &bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // Cut short at the end: wait for the rest.
                        None => {
                            self.pending = after.to_vec();
                            break;
                        }
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(bad..).unwrap_or_default();
                        }
                    }
                }
            }
        }
        text
    }

    /// What is held back, as text (a character that never finished is U+FFFD).
    pub fn finish(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&pending).into_owned()
    }
}

fn event(out: &mut String, at: u64, code: &str, text: &str) {
    use std::fmt::Write;
    if text.is_empty() {
        return;
    }
    let text = serde_json::to_string(text).unwrap_or_default();
    let _ = writeln!(
        out,
        "[{}.{:06},\"{code}\",{text}]",
        at / 1_000_000,
        at % 1_000_000
    );
}

/// The recording as asciicast v2 text: the header line, then one `[seconds, code, text]`
/// line per frame (`o` output, `i` input with `[redacted]` for a kept-out secret, `r` resize
/// as `COLSxROWS`). Output and input are each decoded as one UTF-8 stream.
pub fn asciicast(plaintext: &[u8]) -> Result<String, FrameError> {
    let mut all = frames(plaintext);
    let header = match all.next() {
        Some(Ok(Frame {
            kind: HEADER, data, ..
        })) => serde_json::from_slice::<serde_json::Value>(data).map_err(|_| FrameError::Header)?,
        Some(Err(e)) => return Err(e),
        _ => return Err(FrameError::Header),
    };
    let mut out = header.to_string();
    out.push('\n');
    let (mut output, mut input) = (Utf8Stream::default(), Utf8Stream::default());
    let mut last = 0;
    for (n, frame) in all.enumerate() {
        let frame = frame?;
        last = frame.at;
        match frame.kind {
            OUTPUT => event(&mut out, frame.at, "o", &output.decode(frame.data)),
            INPUT => event(&mut out, frame.at, "i", &input.decode(frame.data)),
            REDACTED => event(&mut out, frame.at, "i", REDACTION_MARK),
            RESIZE => {
                let (w, h) = resize_size(frame.data).ok_or(FrameError::Resize(n + 2))?;
                event(&mut out, frame.at, "r", &format!("{w}x{h}"));
            }
            _ => return Err(FrameError::Header),
        }
    }
    event(&mut out, last, "o", &output.finish());
    event(&mut out, last, "i", &input.finish());
    Ok(out)
}

/// The host's output as text, decoded as one stream: what a channel without a terminal
/// showed, for search.
pub fn output_text(plaintext: &[u8]) -> Result<String, FrameError> {
    let mut text = Utf8Stream::default();
    let mut out = String::new();
    for frame in frames(plaintext) {
        let frame = frame?;
        if frame.kind == OUTPUT {
            out.push_str(&text.decode(frame.data));
        }
    }
    out.push_str(&text.finish());
    Ok(out)
}
