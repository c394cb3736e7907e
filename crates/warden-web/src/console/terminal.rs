//! A recording turned into what the console's player shows: the asciicast's output run
//! through a terminal emulator (vt100) on the server, and after each burst of output the
//! screen rows that changed, as HTML (text escaped, colours and attributes as classes). The
//! browser only swaps rows in and out on time; it never interprets a byte the host sent.

use std::fmt::Write;
use std::num::NonZeroU16;

use serde::Serialize;

/// Output closer together than this is shown as one frame.
const FRAME_MS: u64 = 16;
/// The most frames a recording gives; the rest of the output lands in the last one.
pub(crate) const MAX_FRAMES: usize = 50_000;
/// Terminal sizes accepted from a recording's header or resize events.
const MAX_SIDE: u16 = 1000;
/// The most row HTML a playback sends: a host can print far more than a browser can take.
pub(crate) const MAX_HTML_BYTES: usize = 64 * 1024 * 1024;

/// Why a recording cannot be played.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CastError {
    /// The first line is not an asciicast v2 header.
    #[error("line 1: not an asciicast v2 header: {0}")]
    Header(String),
    /// An event line is malformed.
    #[error("line {line}: {reason}")]
    Event { line: usize, reason: String },
    /// The screens it shows would be too much to send.
    #[error("it shows more than {} MiB of screen changes", MAX_HTML_BYTES / (1024 * 1024))]
    TooLarge,
}

/// What the player shows.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Playback {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// Milliseconds from start to the last output.
    pub duration_ms: u64,
    /// `[ms, [[row, html], …]]`: at `ms`, these rows read so.
    pub frames: Vec<(u64, Vec<(u16, String)>)>,
}

#[derive(serde::Deserialize)]
struct Header {
    version: u32,
    width: u32,
    height: u32,
}

fn side(n: u32, what: &str) -> Result<NonZeroU16, String> {
    u16::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_SIDE)
        .and_then(NonZeroU16::new)
        .ok_or_else(|| format!("{what} {n} is not between 1 and {MAX_SIDE}"))
}

/// Plays `cast` (asciicast v2 text) through a terminal emulator.
pub(crate) fn playback(cast: &str) -> Result<Playback, CastError> {
    playback_within(cast, MAX_HTML_BYTES)
}

/// As [`playback`], refusing a recording whose rows come to more than `budget` bytes.
fn playback_within(cast: &str, budget: usize) -> Result<Playback, CastError> {
    let mut lines = cast.lines();
    let header: Header = serde_json::from_str(lines.next().unwrap_or(""))
        .map_err(|e| CastError::Header(e.to_string()))?;
    if header.version != 2 {
        return Err(CastError::Header(format!(
            "version {} (expected 2)",
            header.version
        )));
    }
    // A client without a terminal size (`ssh -tt` from a script) announces 0: the proxy's
    // emulator then used 80x24, and so does this.
    let or = |n: u32, default: u32| if n == 0 { default } else { n };
    let rows = side(or(header.height, 24), "height").map_err(CastError::Header)?;
    let cols = side(or(header.width, 80), "width").map_err(CastError::Header)?;
    let mut parser = vt100::Parser::new(rows, cols, 0);
    let mut shown: Vec<String> = Vec::new();
    let mut playback = Playback {
        cols: cols.get(),
        rows: rows.get(),
        duration_ms: 0,
        frames: Vec::new(),
    };
    let mut pending: Option<u64> = None;
    let mut sent = 0usize;
    for (i, line) in lines.enumerate() {
        let line_no = i + 2;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| CastError::Event {
            line: line_no,
            reason,
        };
        let (time, kind, data): (f64, String, String) =
            serde_json::from_str(line).map_err(|e| bad(format!("not [time, kind, data]: {e}")))?;
        if !time.is_finite() || time < 0.0 {
            return Err(bad(format!("time {time} is not a non-negative number")));
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked finite and non-negative; seconds to ms saturates"
        )]
        let ms = (time * 1000.0) as u64;
        match kind.as_str() {
            "o" => {
                if let Some(at) = pending
                    && ms >= at.saturating_add(FRAME_MS)
                {
                    sent += flush(&parser, &mut shown, &mut playback, at);
                    pending = None;
                }
                parser.process(data.as_bytes());
                pending.get_or_insert(ms);
            }
            "r" => {
                let (c, r) = data
                    .split_once('x')
                    .ok_or_else(|| bad(format!("resize `{data}` is not COLSxROWS")))?;
                let parse = |s: &str, what| {
                    s.parse::<u32>()
                        .map_err(|_| format!("resize `{data}`: {what} is not a number"))
                        .and_then(|n| side(n, what))
                };
                let (c, r) = (
                    parse(c, "width").map_err(bad)?,
                    parse(r, "height").map_err(bad)?,
                );
                if let Some(at) = pending.take() {
                    sent += flush(&parser, &mut shown, &mut playback, at);
                }
                parser.screen_mut().set_size(r, c);
                playback.cols = playback.cols.max(c.get());
                playback.rows = playback.rows.max(r.get());
                pending = Some(ms);
            }
            // Input, markers: nothing to show.
            _ => {}
        }
        playback.duration_ms = playback.duration_ms.max(ms);
        if sent > budget {
            return Err(CastError::TooLarge);
        }
    }
    if let Some(at) = pending {
        sent += flush(&parser, &mut shown, &mut playback, at);
    }
    if sent > budget {
        return Err(CastError::TooLarge);
    }
    Ok(playback)
}

/// Adds a frame at `at` with the rows that differ from what is shown; returns the bytes of
/// HTML it added.
fn flush(
    parser: &vt100::Parser,
    shown: &mut Vec<String>,
    playback: &mut Playback,
    at: u64,
) -> usize {
    let screen = parser.screen();
    let (rows, cols) = screen.size();
    let mut changed = Vec::new();
    for row in 0..rows.get() {
        let html = row_html(screen, row, cols.get());
        let index = usize::from(row);
        // The player starts with blank rows.
        if shown.get(index).map_or("", String::as_str) != html {
            if shown.len() <= index {
                shown.resize(index + 1, String::new());
            }
            if let Some(slot) = shown.get_mut(index) {
                slot.clone_from(&html);
            }
            changed.push((row, html));
        }
    }
    // Rows below a terminal that shrank are cleared.
    for (index, old) in shown.iter_mut().enumerate().skip(usize::from(rows.get())) {
        if !old.is_empty() {
            old.clear();
            changed.push((u16::try_from(index).unwrap_or(u16::MAX), String::new()));
        }
    }
    if changed.is_empty() {
        return 0;
    }
    let bytes = changed.iter().map(|(_, html)| html.len() + 8).sum();
    if playback.frames.len() >= MAX_FRAMES {
        if let Some(last) = playback.frames.last_mut() {
            last.1.extend(changed);
        }
        return bytes;
    }
    playback.frames.push((at, changed));
    bytes
}

/// One row as HTML: runs of equal attributes in one `<span>`, trailing blanks dropped.
fn row_html(screen: &vt100::Screen, row: u16, cols: u16) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let mut class = String::new();
    let mut blanks = 0usize;
    for col in 0..cols {
        let Some(cell) = screen.cell(row, col) else {
            break;
        };
        if cell.is_wide_continuation() {
            continue;
        }
        let this = classes(cell);
        let contents = cell.contents();
        if !cell.has_contents() && this.is_empty() {
            blanks += 1;
            continue;
        }
        if this != class || (blanks > 0 && !this.is_empty()) {
            close(&mut out, &class, &run);
            run.clear();
            // Blank cells before a styled one take no style of either side.
            out.extend(std::iter::repeat_n(' ', blanks));
            blanks = 0;
            class = this;
        }
        run.extend(std::iter::repeat_n(' ', blanks));
        blanks = 0;
        if cell.has_contents() {
            escape_into(&mut run, contents);
        } else {
            run.push(' ');
        }
    }
    close(&mut out, &class, &run);
    out
}

fn close(out: &mut String, class: &str, run: &str) {
    if run.is_empty() {
        return;
    }
    if class.is_empty() {
        out.push_str(run);
    } else {
        let _ = write!(out, "<span class=\"{class}\">{run}</span>");
    }
}

fn escape_into(out: &mut String, s: &str) {
    // A cell holds one printable grapheme; maud escapes the HTML-special ones.
    let _ = maud::Escaper::new(out).write_str(s);
}

/// The cell's look as CSS classes of `console.css` (colours folded to the 16-colour palette).
fn classes(cell: &vt100::Cell) -> String {
    let mut class = Vec::new();
    if cell.inverse() {
        class.push("t-r".to_owned());
    }
    if let Some(i) = palette(cell.fgcolor()) {
        class.push(format!("f{i}"));
    }
    if let Some(i) = palette(cell.bgcolor()) {
        class.push(format!("g{i}"));
    }
    if cell.bold() {
        class.push("t-b".to_owned());
    }
    if cell.italic() {
        class.push("t-i".to_owned());
    }
    if cell.underline() {
        class.push("t-u".to_owned());
    }
    class.join(" ")
}

/// The nearest of the 16 base colours.
fn palette(color: vt100::Color) -> Option<u8> {
    let (r, g, b) = match color {
        vt100::Color::Default => return None,
        vt100::Color::Idx(i) if i < 16 => return Some(i),
        vt100::Color::Idx(i) if i >= 232 => {
            let level = (i - 232) * 10 + 8;
            (level, level, level)
        }
        vt100::Color::Idx(i) => {
            let i = i - 16;
            let step = |v: u8| if v == 0 { 0 } else { v * 40 + 55 };
            (step(i / 36), step((i / 6) % 6), step(i % 6))
        }
        vt100::Color::Rgb(r, g, b) => (r, g, b),
    };
    let bright = u16::from(r) + u16::from(g) + u16::from(b) > 3 * 160;
    let bit = |v: u8| u8::from(v >= 128);
    let base = bit(r) | bit(g) << 1 | bit(b) << 2;
    Some(if bright { base + 8 } else { base })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{CastError, playback, playback_within};

    fn cast(events: &[(f64, &str, &str)]) -> String {
        let mut out = String::from("{\"version\": 2, \"width\": 20, \"height\": 3}\n");
        for (t, kind, data) in events {
            out.push_str(&serde_json::json!([t, kind, data]).to_string());
            out.push('\n');
        }
        out
    }

    #[test]
    fn output_becomes_rows_of_escaped_html_with_colour_classes() {
        let p = playback(&cast(&[
            (0.5, "o", "hello\r\n"),
            (0.505, "i", "typed"),
            (0.51, "o", "\u{1b}[31mred\u{1b}[0m <b>&\r\n"),
            (2.0, "o", "\u{1b}[1;44mbold\u{1b}[0m"),
        ]))
        .unwrap();
        assert_eq!((p.cols, p.rows, p.duration_ms), (20, 3, 2000));
        // Output within 16 ms is one frame; input shows nothing.
        assert_eq!(p.frames.len(), 2);
        assert_eq!(
            p.frames[0],
            (
                500,
                vec![
                    (0, "hello".to_owned()),
                    (1, "<span class=\"f1\">red</span> &lt;b&gt;&amp;".to_owned())
                ]
            )
        );
        assert_eq!(
            p.frames[1],
            (
                2000,
                vec![(2, "<span class=\"g4 t-b\">bold</span>".to_owned())]
            )
        );
    }

    #[test]
    fn resizes_and_sizeless_headers_are_played() {
        let text = "{\"version\": 2, \"width\": 0, \"height\": 0}\n[0.1, \"o\", \"a\"]\n[0.2, \"r\", \"100x30\"]\n";
        let p = playback(text).unwrap();
        assert_eq!((p.cols, p.rows), (100, 30));
        assert_eq!(p.frames[0], (100, vec![(0, "a".to_owned())]));
    }

    #[test]
    fn blanks_take_no_style_and_a_shrunk_screen_is_cleared() {
        let p = playback(&cast(&[
            (0.1, "o", "a   \u{1b}[41mb\u{1b}[0m\r\nrow two\r\nrow three"),
            (0.5, "r", "20x1"),
        ]))
        .unwrap();
        assert_eq!(
            p.frames[0].1[0],
            (0, "a   <span class=\"g1\">b</span>".to_owned())
        );
        assert_eq!(
            p.frames[1],
            (
                500,
                vec![
                    (0, "row three".to_owned()),
                    (1, String::new()),
                    (2, String::new())
                ]
            )
        );
    }

    #[test]
    fn a_recording_showing_too_much_is_refused() {
        let text = cast(&[(0.1, "o", "0123456789"), (0.2, "o", "\r\nabcdefghij")]);
        assert_eq!(playback_within(&text, 12).unwrap_err(), CastError::TooLarge);
        assert_eq!(
            CastError::TooLarge.to_string(),
            "it shows more than 64 MiB of screen changes"
        );
        assert!(playback_within(&text, 100).is_ok());
    }

    #[test]
    fn bad_recordings_get_exact_errors() {
        let cases = [
            (
                "",
                "line 1: not an asciicast v2 header: EOF while parsing a value at line 1 column 0",
            ),
            (
                "{\"version\": 1, \"width\": 80, \"height\": 24}",
                "line 1: not an asciicast v2 header: version 1 (expected 2)",
            ),
            (
                "{\"version\": 2, \"width\": 5000, \"height\": 24}",
                "line 1: not an asciicast v2 header: width 5000 is not between 1 and 1000",
            ),
            (
                "{\"version\": 2, \"width\": 80, \"height\": 24}\n[1, \"o\"]",
                "line 2: not [time, kind, data]: invalid length 2, expected a tuple of size 3 at line 1 column 8",
            ),
            (
                "{\"version\": 2, \"width\": 80, \"height\": 24}\n\n[-1, \"o\", \"x\"]",
                "line 3: time -1 is not a non-negative number",
            ),
            (
                "{\"version\": 2, \"width\": 80, \"height\": 24}\n[1, \"r\", \"wide\"]",
                "line 2: resize `wide` is not COLSxROWS",
            ),
            (
                "{\"version\": 2, \"width\": 80, \"height\": 24}\n[1, \"r\", \"80x0\"]",
                "line 2: height 0 is not between 1 and 1000",
            ),
        ];
        for (text, expected) in cases {
            let err: CastError = playback(text).unwrap_err();
            assert_eq!(err.to_string(), expected, "{text}");
        }
    }

    /// What is left of a row once the spans the player may receive are taken out.
    fn bare(row: &str) -> String {
        let mut out = row.replace("</span>", "");
        while let Some(start) = out.find("<span class=\"") {
            let end = out[start..].find("\">").unwrap() + start + 2;
            let class = &out[start + 13..end - 2];
            assert!(
                class
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-'),
                "{class}"
            );
            out.replace_range(start..end, "");
        }
        out
    }

    proptest! {
        #[test]
        fn any_output_plays_and_only_escaped_text_reaches_the_page(
            chunks in proptest::collection::vec((0u32..5000, any::<Vec<u8>>()), 0..20)
        ) {
            let mut t = 0.0;
            let mut text = String::from("{\"version\": 2, \"width\": 30, \"height\": 5}\n");
            for (step, bytes) in &chunks {
                t += f64::from(*step) / 1000.0;
                let data = String::from_utf8_lossy(bytes);
                text.push_str(&serde_json::json!([t, "o", data]).to_string());
                text.push('\n');
            }
            let p = playback(&text).unwrap();
            for (_, rows) in &p.frames {
                for (row, html) in rows {
                    prop_assert!(*row < p.rows);
                    let left = bare(html);
                    prop_assert!(!left.contains(['<', '>', '"']), "{html}");
                }
            }
        }

        #[test]
        fn any_text_is_refused_or_played_without_panic(text in "\\PC{0,400}") {
            let _ = playback(&text);
        }
    }
}
