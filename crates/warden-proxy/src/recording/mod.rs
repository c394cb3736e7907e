//! Session recordings: each session channel as a file of timed frames of raw bytes (output,
//! input, resizes), encrypted at rest under a data key of its own sealed by the KEK
//! ([`sealed`]), hashed as it is written. [`frames::asciicast`] makes the asciicast v2 text
//! players read. A subsystem (sftp) or a forwarded port is recorded by name and byte counts
//! only: its bytes are not a terminal. A channel with a pty also gets a transcript (what the
//! terminal showed, by terminal emulation), sealed the same way; without a pty the output
//! itself is the transcript.

pub mod frames;
pub mod sealed;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use warden_pki::seal::Kek;

pub use sealed::{OpenError, Opened, open};

use crate::recording::frames::{INPUT, OUTPUT, REDACTED, RESIZE};
use crate::recording::sealed::SealedWriter;

/// What a finished recording is, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// `shell`, `exec` or `subsystem`.
    pub kind: String,
    /// The command (exec) or subsystem name.
    pub command: Option<String>,
    /// Bytes the user sent and received.
    pub input_bytes: u64,
    /// Bytes the host sent.
    pub output_bytes: u64,
    /// For a channel with a pty: the transcript file (what the terminal showed, by terminal
    /// emulation, sealed like the recording) and its SHA-256.
    pub transcript: Option<(PathBuf, String)>,
    /// Entries typed at a secret prompt and kept out of the recording: many of them in one
    /// session is worth a look (a prompt made to look like one hides what is typed at it).
    pub redactions: u64,
}

/// What a recording file's name ends with.
pub const RECORDING_SUFFIX: &str = ".rec";

/// What a transcript file's name ends with.
pub const TRANSCRIPT_SUFFIX: &str = ".text.rec";

/// Lines of scrollback a pty transcript keeps (older lines are dropped).
const TRANSCRIPT_LINES: usize = 10_000;

/// One channel's recording.
pub struct Recorder {
    file: SealedWriter,
    started: Instant,
    kind: String,
    command: Option<String>,
    terminal: bool,
    input_bytes: u64,
    output_bytes: u64,
    /// With a pty: the screen the transcript is rendered on when the channel closes (from the
    /// sealed frames, off the relay's path), the file its text goes to, and the KEK that
    /// opens the recording again.
    screen: Option<(Box<vt100::Parser>, SealedWriter, Arc<Kek>)>,
    /// The line the terminal shows now (its last bytes), to tell a secret prompt.
    line_tail: Vec<u8>,
    /// Inside a secret's entry: what is typed is not recorded until Enter.
    secret: Secret,
    /// Entries redacted so far.
    redactions: u64,
}

/// Where the user is with a secret prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    /// No secret prompt on screen.
    None,
    /// A prompt for a password or passphrase is the last thing the terminal showed; what is
    /// typed next is not echoed, and not recorded.
    Prompted,
    /// Typing a secret: some input was kept out of the recording.
    Typing,
}

/// `text` without terminal escape sequences (`ESC [ … final`, `ESC ] … BEL`, other `ESC x`),
/// so a coloured prompt reads as its words.
fn without_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The most characters of the current line kept to recognise a prompt.
const PROMPT_TAIL: usize = 96;

/// Whether the line the terminal shows ends in a prompt for a secret, as sudo, su, ssh,
/// ssh-keygen, mysql and most others print them: `[sudo] password for alice: `,
/// `Enter passphrase for key '…': `, `Password:`.
fn secret_prompt(line: &str) -> bool {
    let line = line.trim_end().to_lowercase();
    line.ends_with(':')
        && [
            "password",
            "passphrase",
            "passcode",
            "pin",
            "one-time code",
            "otp",
            "token",
        ]
        .iter()
        .any(|word| line.contains(word))
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.file.path())
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Why a recording could not be written. The session stops: nothing runs unrecorded.
#[derive(Debug, thiserror::Error)]
#[error("cannot record the session in {path}: {cause}")]
pub struct RecordError {
    path: String,
    cause: std::io::Error,
}

/// How the channel began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// An interactive shell, with the terminal size and type when a pty was asked for.
    Shell {
        /// Columns.
        width: u32,
        /// Rows.
        height: u32,
        /// `TERM`.
        term: Option<String>,
    },
    /// A command.
    Exec {
        /// The command line.
        command: String,
        /// Columns, rows and `TERM` when a pty was asked for.
        pty: Option<(u32, u32, String)>,
    },
    /// A subsystem such as sftp.
    Subsystem(String),
    /// A forwarded TCP connection (`ssh -L`) to `HOST:PORT` as the host sees it.
    Forward(String),
}

impl Recorder {
    /// Creates `dir/NAME.rec` (mode 0600, never over an existing file, sealed under `kek`)
    /// and writes the header; with a pty, also `dir/NAME.text.rec` for the transcript.
    pub fn create(
        dir: &Path,
        name: &str,
        start: &Start,
        meta: &serde_json::Value,
        kek: &Arc<Kek>,
    ) -> Result<Recorder, RecordError> {
        let path = dir.join(format!("{name}{RECORDING_SUFFIX}"));
        let fail = |path: &Path| {
            let path = path.display().to_string();
            move |cause| RecordError { path, cause }
        };
        let file = SealedWriter::create(&path, kek).map_err(fail(&path))?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let pty = match start {
            Start::Shell { term, .. } => term.is_some(),
            Start::Exec { pty, .. } => pty.is_some(),
            Start::Subsystem(_) | Start::Forward(_) => false,
        };
        let (width, height, term, kind, command, terminal) = match start {
            Start::Shell {
                width,
                height,
                term,
            } => (*width, *height, term.clone(), "shell", None, true),
            Start::Exec { command, pty } => {
                let (w, h, t) = pty
                    .clone()
                    .map_or((80, 24, None), |(w, h, t)| (w, h, Some(t)));
                (w, h, t, "exec", Some(command.clone()), true)
            }
            Start::Subsystem(name) => (80, 24, None, "subsystem", Some(name.clone()), false),
            Start::Forward(to) => (80, 24, None, "forward", Some(to.clone()), false),
        };
        let mut header = serde_json::json!({
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": timestamp,
            "env": { "TERM": term },
            "warden": meta,
        });
        if let (Some(command), Some(fields)) = (&command, header.as_object_mut()) {
            fields.insert("command".to_owned(), serde_json::json!(command));
        }
        let screen = if terminal && pty {
            let size = |n: u32, default: u16| clamp_size(n).or(std::num::NonZeroU16::new(default));
            let parser = match (size(height, 24), size(width, 80)) {
                (Some(rows), Some(cols)) => vt100::Parser::new(rows, cols, TRANSCRIPT_LINES),
                _ => vt100::Parser::default(),
            };
            let text = dir.join(format!("{name}{TRANSCRIPT_SUFFIX}"));
            let writer = SealedWriter::create(&text, kek).map_err(fail(&text))?;
            Some((Box::new(parser), writer, kek.clone()))
        } else {
            None
        };
        let mut recorder = Recorder {
            file,
            started: Instant::now(),
            kind: kind.to_owned(),
            command,
            terminal,
            input_bytes: 0,
            output_bytes: 0,
            screen,
            line_tail: Vec::new(),
            secret: Secret::None,
            redactions: 0,
        };
        recorder.frame(frames::HEADER, header.to_string().as_bytes(), true)?;
        Ok(recorder)
    }

    fn fail(&self) -> impl Fn(std::io::Error) -> RecordError + use<> {
        let path = self.file.path().display().to_string();
        move |cause| RecordError {
            path: path.clone(),
            cause,
        }
    }

    /// Writes one frame (`always`: even on a channel that is not a terminal).
    fn frame(&mut self, kind: u8, data: &[u8], always: bool) -> Result<(), RecordError> {
        if !(self.terminal || always) {
            return Ok(());
        }
        let at = if kind == frames::HEADER {
            std::time::Duration::ZERO
        } else {
            self.started.elapsed()
        };
        let head = frames::head(kind, at, data.len());
        let fail = self.fail();
        self.file.write(&head).map_err(&fail)?;
        self.file.write(data).map_err(fail)
    }

    /// Output from the host (stdout and stderr).
    pub fn output(&mut self, data: &[u8]) -> Result<(), RecordError> {
        self.output_bytes += data.len() as u64;
        if !self.terminal || data.is_empty() {
            return Ok(());
        }
        self.follow_prompt(data);
        self.frame(OUTPUT, data, false)
    }

    /// Keeps the current line's tail and whether it asks for a secret. A prompt stays a prompt
    /// until a line ends (a status line redrawn beside it does not end it).
    fn follow_prompt(&mut self, data: &[u8]) {
        let line_break = data.iter().rposition(|b| *b == b'\n' || *b == b'\r');
        let after = match line_break {
            Some(at) => {
                self.line_tail.clear();
                data.get(at + 1..).unwrap_or_default()
            }
            None => data,
        };
        // Four bytes a character at most: the tail holds the last PROMPT_TAIL characters.
        let keep = PROMPT_TAIL * 4;
        let after = after
            .get(after.len().saturating_sub(keep)..)
            .unwrap_or(after);
        self.line_tail.extend_from_slice(after);
        let excess = self.line_tail.len().saturating_sub(keep);
        self.line_tail.drain(..excess);
        let keep = self.secret == Secret::Typing
            || (self.secret == Secret::Prompted && line_break.is_none());
        if !keep {
            let line = String::from_utf8_lossy(&self.line_tail);
            self.secret = if secret_prompt(&without_escapes(&line)) {
                Secret::Prompted
            } else {
                Secret::None
            };
        }
    }

    /// The user's terminal changed size: a resize frame (the transcript's screen takes the new
    /// size there when it is rendered).
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), RecordError> {
        if !self.terminal {
            return Ok(());
        }
        self.frame(RESIZE, &frames::resize_data(width, height), false)
    }

    /// Input from the user. What is typed after a secret prompt, up to Enter, is recorded as
    /// one redaction (not its length); the rest as typed.
    pub fn input(&mut self, data: &[u8]) -> Result<(), RecordError> {
        self.input_bytes += data.len() as u64;
        if !self.terminal || data.is_empty() {
            return Ok(());
        }
        if self.secret == Secret::None {
            return self.frame(INPUT, data, false);
        }
        match data.iter().position(|b| *b == b'\r' || *b == b'\n') {
            None => {
                self.secret = Secret::Typing;
                Ok(())
            }
            Some(end) => {
                self.secret = Secret::None;
                self.line_tail.clear();
                self.redactions += 1;
                self.frame(REDACTED, &[], false)?;
                self.frame(INPUT, data.get(end..).unwrap_or_default(), false)
            }
        }
    }

    /// Seals and syncs the file, renders and seals the transcript (a pty channel: the whole
    /// output through the terminal emulator, which takes seconds for hundreds of megabytes,
    /// so call it where blocking is fine), and says what it holds.
    pub fn finish(self) -> Result<Recorded, RecordError> {
        let fail = self.fail();
        let (path, bytes, sha256) = self.file.finish().map_err(&fail)?;
        let transcript = match self.screen {
            Some((mut screen, writer, kek)) => Some(transcript(&path, &mut screen, writer, &kek)?),
            None => None,
        };
        Ok(Recorded {
            path,
            sha256,
            bytes,
            kind: self.kind,
            command: self.command,
            input_bytes: self.input_bytes,
            output_bytes: self.output_bytes,
            transcript,
            redactions: self.redactions,
        })
    }
}

/// Plays a finished recording's output and resizes through `screen` and seals what it shows
/// into `writer`; returns the transcript's path and SHA-256.
fn transcript(
    recording: &Path,
    screen: &mut vt100::Parser,
    mut writer: SealedWriter,
    kek: &Kek,
) -> Result<(PathBuf, String), RecordError> {
    let failed = |path: &Path, cause: std::io::Error| RecordError {
        path: path.display().to_string(),
        cause,
    };
    // Frames cross segments: what is left of one waits for the next.
    let mut pending: Vec<u8> = Vec::new();
    let mut bad = None;
    let play = |screen: &mut vt100::Parser, frame: frames::Frame<'_>| match frame.kind {
        OUTPUT => screen.process(frame.data),
        RESIZE => {
            if let Some((width, height)) = frames::resize_size(frame.data) {
                let (rows, cols) = screen.screen().size();
                let rows = clamp_size(height).unwrap_or(rows);
                let cols = clamp_size(width).unwrap_or(cols);
                screen.screen_mut().set_size(rows, cols);
            }
        }
        _ => {}
    };
    sealed::read_segments(recording, kek, |segment| {
        pending.extend_from_slice(segment);
        let whole = frames::complete(&pending);
        for frame in frames::frames(pending.get(..whole).unwrap_or_default()) {
            match frame {
                Ok(frame) => play(screen, frame),
                Err(e) => bad = Some(e),
            }
        }
        pending.drain(..whole);
    })
    .map_err(|e| failed(recording, e))?;
    if let Some(e) = bad {
        return Err(failed(recording, std::io::Error::other(e.to_string())));
    }
    let text = render(screen);
    let path = writer.path().to_path_buf();
    writer
        .write(text.as_bytes())
        .map_err(|e| failed(&path, e))?;
    let (path, _, sha) = writer.finish().map_err(|e| failed(&path, e))?;
    Ok((path, sha))
}

/// A terminal dimension the emulator takes: 1 to 400 (a client may claim anything, and the
/// screen with its scrollback grows with the width).
fn clamp_size(n: u32) -> Option<std::num::NonZeroU16> {
    u16::try_from(n.min(400))
        .ok()
        .and_then(std::num::NonZeroU16::new)
}

/// The screen's scrollback and visible rows as plain text, trailing blank lines dropped.
fn render(screen: &mut vt100::Parser) -> String {
    let total = screen.screen().scrollback_len();
    let mut lines = Vec::new();
    for offset in (1..=total).rev() {
        screen.screen_mut().set_scrollback(offset);
        let (_, cols) = screen.screen().size();
        if let Some(row) = screen.screen().rows(0, cols.get()).next() {
            lines.push(row);
        }
    }
    screen.screen_mut().set_scrollback(0);
    let (_, cols) = screen.screen().size();
    lines.extend(screen.screen().rows(0, cols.get()));
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let mut text: String = lines
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}
