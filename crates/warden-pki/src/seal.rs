//! Envelope encryption: `v1.<wrapped data key>.<ciphertext>`, each part base64 of
//! `nonce (12 bytes) || AES-256-GCM ciphertext and tag`. The data key is bound to the sealed
//! value's purpose through the associated data, so a blob cannot be swapped for another.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

const VERSION: &str = "v1";
const WRAP_AAD: &[u8] = b"warden data key v1";

/// The key-encryption key: 32 bytes. `Debug` never shows it.
pub struct Kek(Zeroizing<[u8; 32]>);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The KEK file does not hold a key.
    #[error("invalid key-encryption key: {0}")]
    BadKek(&'static str),
    /// The sealed text is not in the `v1.…` form.
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// Authentication failed: a different KEK, a different purpose, or a tampered blob.
    #[error("cannot open sealed `{0}`: wrong key-encryption key or tampered data")]
    WrongKey(String),
}

impl Kek {
    /// A new random KEK.
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(key.as_mut());
        Kek(key)
    }

    /// Parses a KEK file's text: 64 hex digits (white space around them is ignored).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(SealError::BadKek("expected 64 hex digits (32 bytes)"));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        for (out, pair) in key.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| SealError::BadKek("not hex"))?;
            *out = u8::from_str_radix(pair, 16).map_err(|_| SealError::BadKek("not hex"))?;
        }
        Ok(Kek(key))
    }

    /// The KEK file's text: 64 lowercase hex digits and a newline. Handle as a secret.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::with_capacity(65));
        for b in self.0.iter() {
            text.push_str(&format!("{b:02x}"));
        }
        text.push('\n');
        text
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }
}

fn encrypt(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8], rng: &mut impl RngCore) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    // Encryption only fails for inputs beyond GCM's length limit (64 GiB).
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

fn decrypt(cipher: &Aes256Gcm, blob: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, body) = blob.split_at_checked(12)?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
        .map(Zeroizing::new)
}

/// Seals `secret` for `purpose` (like `ssh-user-ca`) under `kek`.
pub fn seal(kek: &Kek, purpose: &str, secret: &[u8], rng: &mut impl RngCore) -> String {
    let mut dek = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(dek.as_mut());
    let data = encrypt(
        &Aes256Gcm::new(dek.as_ref().into()),
        secret,
        purpose.as_bytes(),
        rng,
    );
    let wrapped = encrypt(&kek.cipher(), dek.as_ref(), WRAP_AAD, rng);
    format!(
        "{VERSION}.{}.{}",
        STANDARD_NO_PAD.encode(wrapped),
        STANDARD_NO_PAD.encode(data)
    )
}

/// Opens a sealed value, checking it was sealed for `purpose` under `kek`.
pub fn open(kek: &Kek, purpose: &str, sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let mut parts = sealed.split('.');
    let (Some(VERSION), Some(wrapped), Some(data), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SealError::Malformed("expected v1.<key>.<data>"));
    };
    let wrapped = STANDARD_NO_PAD
        .decode(wrapped)
        .map_err(|_| SealError::Malformed("the data key is not base64"))?;
    let data = STANDARD_NO_PAD
        .decode(data)
        .map_err(|_| SealError::Malformed("the data is not base64"))?;
    let wrong = || SealError::WrongKey(purpose.to_owned());
    let mut dek = decrypt(&kek.cipher(), &wrapped, WRAP_AAD).ok_or_else(wrong)?;
    let key: &[u8; 32] = dek.as_slice().try_into().map_err(|_| wrong())?;
    let opened = decrypt(&Aes256Gcm::new(key.into()), &data, purpose.as_bytes()).ok_or_else(wrong);
    dek.zeroize();
    opened
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn round_trip_and_refusals() {
        let mut rng = StdRng::seed_from_u64(1);
        let kek = Kek::generate(&mut rng);
        let sealed = seal(&kek, "ssh-user-ca", b"secret key bytes", &mut rng);
        assert!(!sealed.contains("secret"));
        assert_eq!(
            open(&kek, "ssh-user-ca", &sealed).unwrap().as_slice(),
            b"secret key bytes"
        );
        let other = Kek::generate(&mut rng);
        assert_eq!(
            open(&other, "ssh-user-ca", &sealed)
                .unwrap_err()
                .to_string(),
            "cannot open sealed `ssh-user-ca`: wrong key-encryption key or tampered data"
        );
        assert!(matches!(
            open(&kek, "ssh-host-ca", &sealed),
            Err(SealError::WrongKey(_))
        ));
        assert_eq!(
            open(&kek, "x", "v2.a.b"),
            Err(SealError::Malformed("expected v1.<key>.<data>"))
        );
        let text = kek.to_file_text();
        let again = Kek::parse(&text).unwrap();
        assert_eq!(
            open(&again, "ssh-user-ca", &sealed).unwrap().as_slice(),
            b"secret key bytes"
        );
        assert_eq!(
            Kek::parse("abc").unwrap_err().to_string(),
            "invalid key-encryption key: expected 64 hex digits (32 bytes)"
        );
        assert_eq!(format!("{kek:?}"), "Kek(<redacted>)");
    }

    proptest! {
        #[test]
        fn open_never_panics_and_never_opens_garbage(text in "\\PC{0,200}") {
            let kek = Kek::generate(&mut StdRng::seed_from_u64(2));
            prop_assert!(open(&kek, "p", &text).is_err());
        }

        #[test]
        fn any_flipped_character_is_refused(seed in any::<u64>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let kek = Kek::generate(&mut rng);
            let sealed = seal(&kek, "p", b"hello", &mut rng);
            let pos = usize::try_from(seed % sealed.len() as u64).unwrap();
            let mut bytes = sealed.clone().into_bytes();
            bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            prop_assume!(tampered != sealed);
            prop_assert!(open(&kek, "p", &tampered).is_err());
        }
    }
}
