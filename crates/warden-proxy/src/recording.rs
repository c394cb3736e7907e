//! Session recordings: each session channel as an asciicast v2 file (a header line, then one
//! `[seconds, "o"|"i", text]` line per chunk of output or input), hashed as it is written.
//! A subsystem (sftp) or a forwarded port is recorded by name and byte counts only: its bytes
//! are not a terminal.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

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
    /// The plain-text transcript (what the terminal showed, by terminal emulation) and its
    /// SHA-256, for terminal channels.
    pub transcript: Option<(PathBuf, String)>,
    /// Entries typed at a secret prompt and kept out of the recording: many of them in one
    /// session is worth a look (a prompt made to look like one hides what is typed at it).
    pub redactions: u64,
}

/// What a recording holds in place of a secret typed at a prompt.
pub const REDACTED: &str = "[redacted]";

/// Lines of scrollback a pty transcript keeps (older lines are dropped).
const TRANSCRIPT_LINES: usize = 10_000;

/// A channel's transcript as it is made.
enum Transcript {
    /// With a pty: what the terminal showed, by terminal emulation, rendered at the end.
    Screen(Box<vt100::Parser>),
    /// Without a pty: the output as text, streamed to `NAME.txt`.
    Plain {
        path: PathBuf,
        out: BufWriter<File>,
        sha: Sha256,
    },
}

fn private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn hex(sha: Sha256) -> String {
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes to text for the asciicast lines, chunk by chunk: a character split between two
/// chunks is held back and joined, so the text is what decoding the whole stream would give
/// (invalid bytes become U+FFFD, as `String::from_utf8_lossy` makes them).
#[derive(Debug, Default)]
struct Utf8Stream {
    /// The start of a character whose remaining bytes have not arrived yet.
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn decode(&mut self, data: &[u8]) -> String {
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
    fn finish(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&pending).into_owned()
    }
}

/// One channel's recording.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    sha: Sha256,
    bytes: u64,
    started: Instant,
    kind: String,
    command: Option<String>,
    terminal: bool,
    input_bytes: u64,
    output_bytes: u64,
    transcript: Option<Transcript>,
    output_text: Utf8Stream,
    input_text: Utf8Stream,
    /// The line the terminal shows now (its last characters), to tell a secret prompt.
    line_tail: String,
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
            .field("path", &self.path)
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
    /// Creates `dir/NAME.cast` (mode 0600, never over an existing file) and writes the header.
    pub fn create(
        dir: &Path,
        name: &str,
        start: &Start,
        meta: &serde_json::Value,
    ) -> Result<Recorder, RecordError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(format!("{name}.cast"));
        let fail = |cause| RecordError {
            path: path.display().to_string(),
            cause,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
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
        let transcript = match (terminal, pty) {
            (false, _) => None,
            (true, true) => {
                let size =
                    |n: u32, default: u16| clamp_size(n).or(std::num::NonZeroU16::new(default));
                let parser = match (size(height, 24), size(width, 80)) {
                    (Some(rows), Some(cols)) => vt100::Parser::new(rows, cols, TRANSCRIPT_LINES),
                    _ => vt100::Parser::default(),
                };
                Some(Transcript::Screen(Box::new(parser)))
            }
            (true, false) => {
                let text = path.with_extension("txt");
                let file = private_file(&text).map_err(fail)?;
                Some(Transcript::Plain {
                    path: text,
                    out: BufWriter::new(file),
                    sha: Sha256::new(),
                })
            }
        };
        let mut recorder = Recorder {
            transcript,
            path: path.clone(),
            out: BufWriter::new(file),
            sha: Sha256::new(),
            bytes: 0,
            started: Instant::now(),
            kind: kind.to_owned(),
            command,
            terminal,
            input_bytes: 0,
            output_bytes: 0,
            output_text: Utf8Stream::default(),
            input_text: Utf8Stream::default(),
            line_tail: String::new(),
            secret: Secret::None,
            redactions: 0,
        };
        recorder.line(&header.to_string()).map_err(fail)?;
        Ok(recorder)
    }

    fn line(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.sha.update(text.as_bytes());
        self.sha.update(b"\n");
        self.bytes += text.len() as u64 + 1;
        Ok(())
    }

    fn event(&mut self, code: &str, text: &str) -> Result<(), RecordError> {
        if !self.terminal || text.is_empty() {
            return Ok(());
        }
        let at = self.started.elapsed().as_secs_f64();
        let text = serde_json::to_string(text).unwrap_or_default();
        let line = format!("[{at:.6},\"{code}\",{text}]");
        let path = self.path.display().to_string();
        self.line(&line)
            .map_err(|cause| RecordError { path, cause })
    }

    /// Output from the host (stdout and stderr).
    pub fn output(&mut self, data: &[u8]) -> Result<(), RecordError> {
        self.output_bytes += data.len() as u64;
        if !self.terminal {
            return Ok(());
        }
        let text = self.output_text.decode(data);
        self.transcribe(data, &text)?;
        self.follow_prompt(&text);
        self.event("o", &text)
    }

    /// Keeps the current line's tail and whether it asks for a secret. A prompt stays a prompt
    /// until a line ends (a status line redrawn beside it does not end it).
    fn follow_prompt(&mut self, text: &str) {
        let broke = text.contains(['\n', '\r']);
        let after_break = text.rfind(['\n', '\r']).map_or(text, |i| {
            self.line_tail.clear();
            text.get(i + 1..).unwrap_or_default()
        });
        self.line_tail.push_str(after_break);
        let excess = self.line_tail.chars().count().saturating_sub(PROMPT_TAIL);
        if excess > 0 {
            self.line_tail = self.line_tail.chars().skip(excess).collect();
        }
        let keep = self.secret == Secret::Typing || (self.secret == Secret::Prompted && !broke);
        if !keep {
            self.secret = if secret_prompt(&without_escapes(&self.line_tail)) {
                Secret::Prompted
            } else {
                Secret::None
            };
        }
    }

    /// Adds output to the transcript: raw bytes to the terminal emulator, decoded text to a
    /// plain transcript.
    fn transcribe(&mut self, data: &[u8], text: &str) -> Result<(), RecordError> {
        match &mut self.transcript {
            Some(Transcript::Screen(screen)) => screen.process(data),
            Some(Transcript::Plain { out, sha, path }) => {
                sha.update(text.as_bytes());
                out.write_all(text.as_bytes())
                    .map_err(|cause| RecordError {
                        path: path.display().to_string(),
                        cause,
                    })?;
            }
            None => {}
        }
        Ok(())
    }

    /// The user's terminal changed size: a `"r"` event (`COLSxROWS`), and the screen behind
    /// the transcript takes the new size.
    pub fn resize(&mut self, width: u32, height: u32) -> Result<(), RecordError> {
        if !self.terminal {
            return Ok(());
        }
        if let Some(Transcript::Screen(screen)) = &mut self.transcript {
            let (rows, cols) = screen.screen().size();
            let rows = clamp_size(height).unwrap_or(rows);
            let cols = clamp_size(width).unwrap_or(cols);
            screen.screen_mut().set_size(rows, cols);
        }
        self.event("r", &format!("{width}x{height}"))
    }

    /// Input from the user. What is typed after a secret prompt, up to Enter, is recorded as
    /// one `[redacted]` (not its length); the rest as typed.
    pub fn input(&mut self, data: &[u8]) -> Result<(), RecordError> {
        self.input_bytes += data.len() as u64;
        if !self.terminal {
            return Ok(());
        }
        let text = self.input_text.decode(data);
        if self.secret == Secret::None {
            return self.event("i", &text);
        }
        match text.find(['\r', '\n']) {
            None => {
                if !text.is_empty() {
                    self.secret = Secret::Typing;
                }
                Ok(())
            }
            Some(end) => {
                self.secret = Secret::None;
                self.line_tail.clear();
                self.redactions += 1;
                self.event("i", REDACTED)?;
                self.event("i", text.get(end..).unwrap_or_default())
            }
        }
    }

    /// Flushes and syncs the file, and says what it holds.
    pub fn finish(mut self) -> Result<Recorded, RecordError> {
        let rest = self.output_text.finish();
        if !rest.is_empty() {
            self.transcribe(&[], &rest)?;
            self.event("o", &rest)?;
        }
        let rest = self.input_text.finish();
        self.event("i", &rest)?;
        let path = self.path.display().to_string();
        let fail = |cause| RecordError {
            path: path.clone(),
            cause,
        };
        self.out.flush().map_err(fail)?;
        self.out.get_ref().sync_all().map_err(fail)?;
        let transcript = match self.transcript.take() {
            Some(Transcript::Screen(mut screen)) => {
                Some(write_transcript(&self.path, &mut screen).map_err(fail)?)
            }
            Some(Transcript::Plain { path, mut out, sha }) => {
                out.flush().map_err(fail)?;
                out.get_ref().sync_all().map_err(fail)?;
                Some((path, hex(sha)))
            }
            None => None,
        };
        let sha256 = self
            .sha
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Recorded {
            path: self.path,
            sha256,
            bytes: self.bytes,
            kind: self.kind,
            command: self.command,
            input_bytes: self.input_bytes,
            output_bytes: self.output_bytes,
            transcript,
            redactions: self.redactions,
        })
    }
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

/// Writes `NAME.txt` beside the recording; returns its path and SHA-256.
fn write_transcript(cast: &Path, screen: &mut vt100::Parser) -> std::io::Result<(PathBuf, String)> {
    let path = cast.with_extension("txt");
    let text = render(screen);
    let mut file = private_file(&path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    let mut sha = Sha256::new();
    sha.update(text.as_bytes());
    Ok((path, hex(sha)))
}
