//! A recording file at rest: a data key of its own, sealed by the key-encryption key, then the
//! recorded bytes in AES-256-GCM segments.
//!
//! ```text
//! warden-recording v1\n
//! <the data key, sealed for `recording:FILE` (warden_pki::seal)>\n
//! segment*   u32 big-endian length, then AES-256-GCM of up to 64 KiB with its 16-byte tag
//! ```
//!
//! Segment n's nonce is `[last, 0, 0, 0] ‖ n` (u64 big-endian), `last` being 1 for the final
//! segment only (the STREAM construction): segments cannot be reordered, dropped or added, and
//! a file cut short (the process stopped mid-session) is told from a finished one. The sealing
//! names the file, so a recording renamed to another's name does not open. A copy of the file
//! without the KEK is noise.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sha2::{Digest, Sha256};
use warden_pki::seal::{self, Kek};
use zeroize::Zeroizing;

/// The first line of every recording file.
pub const MAGIC: &[u8] = b"warden-recording v1\n";

/// Most plaintext in one segment.
pub const SEGMENT: usize = 64 * 1024;

/// A segment's tag.
const TAG: usize = 16;

/// Buffered plaintext older than this is sealed at the next write, so a process stopped
/// mid-session loses at most about this much of what it recorded.
const SEAL_AFTER: Duration = Duration::from_secs(1);

/// What the data key is sealed for: the file's name.
fn purpose(file: &str) -> String {
    format!("recording:{file}")
}

fn nonce(counter: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; 12];
    if let Some(flag) = bytes.first_mut() {
        *flag = u8::from(last);
    }
    if let Some(tail) = bytes.get_mut(4..) {
        tail.copy_from_slice(&counter.to_be_bytes());
    }
    Nonce::assume_unique_for_key(bytes)
}

fn aead_key(key: &[u8]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .ok()
        .map(LessSafeKey::new)
}

/// Writes a recording file: plaintext in, sealed segments out, hashed as written.
pub struct SealedWriter {
    path: PathBuf,
    file: File,
    key: LessSafeKey,
    counter: u64,
    /// The segment being filled: four bytes for its length, then plaintext.
    segment: Vec<u8>,
    since: Instant,
    sha: Sha256,
    bytes: u64,
}

impl std::fmt::Debug for SealedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SealedWriter {
    /// Creates `path` (mode 0600, never over an existing file) with a new data key sealed
    /// under `kek` for the file's name.
    pub fn create(path: &Path, kek: &Kek) -> std::io::Result<SealedWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| std::io::Error::other("the recording's name is not text"))?;
        let mut rng = rand::rngs::OsRng;
        let mut data_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(data_key.as_mut());
        let sealed = seal::seal(kek, &purpose(name), data_key.as_ref(), &mut rng);
        let key = aead_key(data_key.as_ref())
            .ok_or_else(|| std::io::Error::other("cannot make a data key"))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let mut preamble = MAGIC.to_vec();
        preamble.extend_from_slice(sealed.as_bytes());
        preamble.push(b'\n');
        file.write_all(&preamble)?;
        let mut sha = Sha256::new();
        sha.update(&preamble);
        let mut segment = Vec::with_capacity(4 + SEGMENT + TAG);
        segment.extend_from_slice(&[0; 4]);
        Ok(SealedWriter {
            path: path.to_path_buf(),
            file,
            key,
            counter: 0,
            segment,
            since: Instant::now(),
            sha,
            bytes: preamble.len() as u64,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends plaintext; full segments (and any older than a second) are sealed and written.
    pub fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let room = SEGMENT.saturating_sub(self.buffered());
            let (now, rest) = data.split_at(room.min(data.len()));
            self.segment.extend_from_slice(now);
            data = rest;
            if self.buffered() >= SEGMENT {
                self.seal(false)?;
            }
        }
        if self.buffered() > 0 && self.since.elapsed() >= SEAL_AFTER {
            self.seal(false)?;
        }
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.segment.len().saturating_sub(4)
    }

    fn seal(&mut self, last: bool) -> std::io::Result<()> {
        let fail = || std::io::Error::other("cannot encrypt the recording");
        let plaintext = self.segment.get_mut(4..).ok_or_else(fail)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(self.counter, last), Aad::from(MAGIC), plaintext)
            .map_err(|_| fail())?;
        self.segment.extend_from_slice(tag.as_ref());
        let len = u32::try_from(self.segment.len() - 4).map_err(|_| fail())?;
        if let Some(head) = self.segment.get_mut(..4) {
            head.copy_from_slice(&len.to_be_bytes());
        }
        self.file.write_all(&self.segment)?;
        self.sha.update(&self.segment);
        self.bytes += self.segment.len() as u64;
        self.counter += 1;
        self.segment.clear();
        self.segment.extend_from_slice(&[0; 4]);
        self.since = Instant::now();
        Ok(())
    }

    /// Seals what is left as the final segment, syncs the file, and returns its size and
    /// SHA-256 (hex).
    pub fn finish(mut self) -> std::io::Result<(PathBuf, u64, String)> {
        self.seal(true)?;
        self.file.sync_all()?;
        let sha = self
            .sha
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((self.path, self.bytes, sha))
    }
}

/// Why a recording file does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The first line is not [`MAGIC`].
    #[error("not a Warden recording")]
    NotARecording,
    /// The sealed data key is missing, malformed, or opens under another KEK or name.
    #[error(
        "its data key does not open: another key-encryption key, or the file was renamed or altered"
    )]
    Key,
    /// A segment's length runs past the end or past [`SEGMENT`].
    #[error("damaged at byte {0}: a segment's length is out of range")]
    Framing(u64),
    /// A segment fails authentication.
    #[error("damaged at byte {0}: a segment does not authenticate")]
    Segment(u64),
    /// Bytes follow the final segment.
    #[error("damaged at byte {0}: bytes follow the final segment")]
    Trailing(u64),
}

/// A recording's plaintext, and whether the file was finished.
#[derive(Debug)]
pub struct Opened {
    /// The recorded bytes.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// False when the file stops before its final segment: its session or the process
    /// stopped before it was closed; `plaintext` holds what was sealed until then.
    pub complete: bool,
}

/// Opens a recording file's bytes, named `file`, under `kek`.
pub fn open(bytes: &[u8], file: &str, kek: &Kek) -> Result<Opened, OpenError> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let complete = segments(bytes, file, kek, |segment| {
        plaintext.extend_from_slice(segment);
    })?;
    Ok(Opened {
        plaintext,
        complete,
    })
}

/// Opens the recording file at `path` (named as its file is) a segment at a time, handing
/// each segment's plaintext to `each`, so a large recording is read in bounded memory.
/// Returns whether the file was finished.
pub fn read_segments(path: &Path, kek: &Kek, each: impl FnMut(&[u8])) -> std::io::Result<bool> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("the recording's name is not text"))?;
    let file = std::io::BufReader::with_capacity(SEGMENT + 64, File::open(path)?);
    segments(file, name, kek, each).map_err(|e| std::io::Error::other(e.to_string()))
}

/// Reads a recording named `file` from `reader`, handing each segment's plaintext to `each`
/// in order; returns whether the final segment was there (false: cut short, and `each` has
/// had what was sealed until then).
fn segments(
    mut reader: impl std::io::BufRead,
    file: &str,
    kek: &Kek,
    mut each: impl FnMut(&[u8]),
) -> Result<bool, OpenError> {
    use std::io::{BufRead, Read};
    let mut magic = vec![0u8; MAGIC.len()];
    reader
        .read_exact(&mut magic)
        .map_err(|_| OpenError::NotARecording)?;
    if magic != MAGIC {
        return Err(OpenError::NotARecording);
    }
    let mut line = Vec::new();
    (&mut reader)
        .take(4096)
        .read_until(b'\n', &mut line)
        .map_err(|_| OpenError::Key)?;
    let sealed = line
        .strip_suffix(b"\n")
        .and_then(|s| std::str::from_utf8(s).ok())
        .ok_or(OpenError::Key)?;
    let data_key = seal::open(kek, &purpose(file), sealed).map_err(|_| OpenError::Key)?;
    let key = aead_key(&data_key).ok_or(OpenError::Key)?;
    let mut offset = (MAGIC.len() + line.len()) as u64;
    // A segment's length, or None at the end of the file.
    let length = |reader: &mut dyn Read, offset: u64| {
        let mut head = [0u8; 4];
        match reader.read(&mut head) {
            Ok(0) => Ok(None),
            Ok(n) => {
                let rest = head.get_mut(n..).unwrap_or_default();
                reader
                    .read_exact(rest)
                    .map_err(|_| OpenError::Framing(offset))?;
                Ok(Some(u32::from_be_bytes(head) as usize))
            }
            Err(_) => Err(OpenError::Framing(offset)),
        }
    };
    let opens = |segment: &[u8], counter: u64, last: bool, into: &mut Vec<u8>| {
        into.clear();
        into.extend_from_slice(segment);
        match key.open_in_place(nonce(counter, last), Aad::from(MAGIC), into) {
            Ok(plain) => {
                let n = plain.len();
                into.truncate(n);
                true
            }
            Err(_) => false,
        }
    };
    let mut next = length(&mut reader, offset)?;
    let (mut counter, mut segment, mut plain) = (0u64, Vec::new(), Vec::new());
    while let Some(len) = next {
        if !(TAG..=SEGMENT + TAG).contains(&len) {
            return Err(OpenError::Framing(offset));
        }
        segment.resize(len, 0);
        reader
            .read_exact(&mut segment)
            .map_err(|_| OpenError::Framing(offset))?;
        let end = offset + 4 + len as u64;
        next = length(&mut reader, end)?;
        let last = next.is_none();
        if opens(&segment, counter, last, &mut plain) {
            each(&plain);
            if last {
                return Ok(true);
            }
        } else if last && opens(&segment, counter, false, &mut plain) {
            // The file ends without its final segment: cut short.
            each(&plain);
            return Ok(false);
        } else if !last && opens(&segment, counter, true, &mut plain) {
            return Err(OpenError::Trailing(end));
        } else {
            return Err(OpenError::Segment(offset));
        }
        counter += 1;
        offset = end;
    }
    // No segment at all: cut short before anything was sealed.
    Ok(false)
}
