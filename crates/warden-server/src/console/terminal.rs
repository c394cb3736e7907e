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

/// Why a recording cannot be played.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CastError {
    /// The first line is not an asciicast v2 header.
    #[error("line 1: not an asciicast v2 header: {0}")]
    Header(String),
    /// An event line is malformed.
    #[error("line {line}: {reason}")]
    Event { line: usize, reason: String },
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
                    && ms >= at + FRAME_MS
                {
                    flush(&parser, &mut shown, &mut playback, at);
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
                    flush(&parser, &mut shown, &mut playback, at);
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
    }
    if let Some(at) = pending {
        flush(&parser, &mut shown, &mut playback, at);
    }
    Ok(playback)
}

/// Adds a frame at `at` with the rows that differ from what is shown.
fn flush(parser: &vt100::Parser, shown: &mut Vec<String>, playback: &mut Playback, at: u64) {
    let screen = parser.screen();
    let (rows, cols) = screen.size();
    let mut changed = Vec::new();
    for row in 0..rows.get() {
        let html = row_html(screen, row, cols.get());
        let index = usize::from(row);
        if shown.get(index) != Some(&html) {
            if shown.len() <= index {
                shown.resize(index + 1, String::new());
            }
            if let Some(slot) = shown.get_mut(index) {
                slot.clone_from(&html);
            }
            changed.push((row, html));
        }
    }
    if changed.is_empty() {
        return;
    }
    if playback.frames.len() >= MAX_FRAMES {
        if let Some(last) = playback.frames.last_mut() {
            last.1.extend(changed);
        }
        return;
    }
    playback.frames.push((at, changed));
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
        if this != class {
            close(&mut out, &class, &run);
            run.clear();
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
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
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
