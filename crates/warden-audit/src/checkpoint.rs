//! Checkpoints in the transparency-log signed-note format (C2SP tlog-checkpoint and
//! signed-note), signed with Ed25519, readable by any tool that speaks that format:
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root hash>
//!
//! — <key name> <base64(key id || signature)>
//! ```
//!
//! The key id is the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`, and a
//! verifier key is written `<name>+<key id hex>+<base64(0x01 || public key)>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use crate::Hash;

const ED25519: u8 = 1;

/// A tree head: which log, how many leaves, which root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, unique to it (`warden.example.com/audit`).
    pub origin: String,
    /// Leaves in the tree.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The signed text: origin, size and root, one per line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }
}

/// An Ed25519 key that signs checkpoints. `Debug` never shows the secret.
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public);
    let mut id = [0u8; 4];
    for (out, byte) in id.iter_mut().zip(h.finalize()) {
        *out = byte;
    }
    id
}

/// Key names may not contain spaces, plus signs or newlines (they delimit the formats).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| !c.is_whitespace() && c != '+' && !c.is_control())
}

impl SigningKey {
    /// A key from a 32-byte seed (which must come from a CSPRNG) and a name (the log origin).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey(format!("invalid key name `{name}`")));
        }
        Ok(SigningKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The seed, for storing the key. Handle as a secret.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public half.
    pub fn verifier(&self) -> VerifierKey {
        let public = self.key.verifying_key();
        VerifierKey {
            name: self.name.clone(),
            id: key_id(&self.name, public.as_bytes()),
            key: public,
        }
    }

    /// The signed note for `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        self.sign_note(&checkpoint.body())
    }

    /// A signed note of any body (lines, each ending in a newline). Bodies of other kinds
    /// must start with a line naming their kind, so that none reads as a checkpoint.
    pub fn sign_note(&self, body: &str) -> String {
        let signature = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.verifier().id);
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, STANDARD.encode(blob))
    }
}

/// The public key that checks checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

/// Why a key or a signed note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The verifier key text is malformed.
    #[error("invalid audit public key: {0}")]
    BadKey(String),
    /// The note is not a well-formed checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature by this key (name and id) is on the note.
    #[error("checkpoint is not signed by key `{0}`")]
    NotSignedByKey(String),
    /// A signature by this key is there, but it does not verify.
    #[error("checkpoint signature does not verify with key `{0}`")]
    BadSignature(String),
}

impl VerifierKey {
    /// The key's name (the log origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks a signed note and returns the checkpoint it carries.
    pub fn open(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let malformed = |why: &str| NoteError::Malformed(why.to_owned());
        let body = self.open_note(note)?;
        let mut lines = body.lines();
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| malformed("no origin line"))?;
        let size = lines
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| malformed("tree size is not a number"))?;
        let root = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| <Hash>::try_from(r.as_slice()).ok())
            .ok_or_else(|| malformed("root hash is not 32 bytes of base64"))?;
        if origin != self.name {
            return Err(malformed(&format!(
                "origin `{origin}` is not the key's log `{}`",
                self.name
            )));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Checks a signed note of any body and returns the body (with its final newline).
    pub fn open_note(&self, note: &str) -> Result<String, NoteError> {
        let malformed = |why: &str| NoteError::Malformed(why.to_owned());
        let (body, signatures) = note
            .split_once("\n\n")
            .ok_or_else(|| malformed("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        let mut ours = None;
        for line in signatures.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| malformed("signature line does not start with an em dash"))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or_else(|| malformed("signature line has no signature"))?;
            let blob = STANDARD
                .decode(sig)
                .map_err(|_| malformed("signature is not base64"))?;
            if name == self.name && blob.get(..4) == Some(&self.id[..]) {
                ours = Some(blob);
            }
        }
        let blob = ours.ok_or_else(|| NoteError::NotSignedByKey(self.to_string()))?;
        let sig = blob
            .get(4..)
            .and_then(|s| ed25519_dalek::Signature::from_slice(s).ok())
            .ok_or_else(|| NoteError::BadSignature(self.name.clone()))?;
        self.key
            .verify(body.as_bytes(), &sig)
            .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
        Ok(body)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut blob = vec![ED25519];
        blob.extend_from_slice(self.key.as_bytes());
        let id: String = self.id.iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "{}+{id}+{}", self.name, STANDARD.encode(blob))
    }
}

impl FromStr for VerifierKey {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| NoteError::BadKey(why.to_owned());
        let s = s.trim();
        // The name cannot hold '+', the base64 key can: split from the left.
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id), Some(blob)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected NAME+KEYID+BASE64"));
        };
        if !valid_name(name) {
            return Err(bad("the name is empty or contains spaces"));
        }
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| bad("the key is not base64"))?;
        let (&alg, public) = blob.split_first().ok_or_else(|| bad("the key is empty"))?;
        if alg != ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| bad("not a valid Ed25519 point"))?;
        let expected = key_id(name, &public);
        let given: Vec<u8> = (0..id.len())
            .step_by(2)
            .filter_map(|i| {
                id.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect();
        if id.len() != 8 || given != expected {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            id: expected,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SigningKey {
        SigningKey::from_seed("example.com/audit", &[7u8; 32]).unwrap()
    }

    #[test]
    fn sign_then_open() {
        let cp = Checkpoint {
            origin: "example.com/audit".into(),
            size: 42,
            root: [9u8; 32],
        };
        let note = key().sign(&cp);
        assert!(note.starts_with("example.com/audit\n42\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n\n\u{2014} example.com/audit "));
        let vk: VerifierKey = key().verifier().to_string().parse().unwrap();
        assert_eq!(vk.open(&note).unwrap(), cp);
    }

    #[test]
    fn refuses_tampered_notes_and_wrong_keys() {
        let cp = Checkpoint {
            origin: "example.com/audit".into(),
            size: 42,
            root: [9u8; 32],
        };
        let note = key().sign(&cp);
        let vk = key().verifier();
        let edited = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            vk.open(&edited),
            Err(NoteError::BadSignature("example.com/audit".into()))
        );
        let other = SigningKey::from_seed("example.com/audit", &[8u8; 32])
            .unwrap()
            .verifier();
        assert_eq!(
            other.open(&note),
            Err(NoteError::NotSignedByKey(other.to_string()))
        );
        assert_eq!(
            vk.open("no blank line"),
            Err(NoteError::Malformed(
                "no blank line before the signatures".into()
            ))
        );
    }

    #[test]
    fn refuses_bad_key_text() {
        let text = key().verifier().to_string();
        assert!(text.parse::<VerifierKey>().is_ok());
        let wrong_id = text.replacen('+', "+0", 1);
        assert!(wrong_id.parse::<VerifierKey>().is_err());
        assert_eq!(
            "nonsense".parse::<VerifierKey>().unwrap_err().to_string(),
            "invalid audit public key: expected NAME+KEYID+BASE64"
        );
    }

    #[test]
    fn keys_whose_base64_holds_a_plus_round_trip() {
        for seed in 0u8..=255 {
            let vk = SigningKey::from_seed("example.com/audit", &[seed; 32])
                .unwrap()
                .verifier();
            assert_eq!(vk.to_string().parse::<VerifierKey>().unwrap(), vk);
        }
    }

    proptest! {
        #[test]
        fn open_never_panics(note in "\\PC{0,300}") {
            let _ = key().verifier().open(&note);
        }

        #[test]
        fn key_parse_never_panics(text in "\\PC{0,120}") {
            let _ = text.parse::<VerifierKey>();
        }
    }
}
