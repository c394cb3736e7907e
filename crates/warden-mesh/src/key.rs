//! WireGuard public keys as they travel: 32 bytes of Curve25519 in standard base64.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A node's WireGuard public key. Nodes make their own key pairs; only this half is ever
/// sent to the server.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64, or not 32 bytes once decoded.
    #[error(
        "`{0}` is not a WireGuard key: a key is 32 bytes in base64, 44 characters ending in `=`"
    )]
    Malformed(String),
    /// The all-zero key (what a missing key decodes to) is never valid.
    #[error("the all-zero WireGuard key is not a key")]
    Zero,
}

impl PublicKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<PublicKey, KeyError> {
        if bytes == [0; 32] {
            return Err(KeyError::Zero);
        }
        Ok(PublicKey(bytes))
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<PublicKey, KeyError> {
        let shown = || {
            let mut shown: String = s.chars().take(60).filter(|c| !c.is_control()).collect();
            if s.chars().count() > 60 {
                shown.push('…');
            }
            KeyError::Malformed(shown)
        };
        if s.len() != 44 {
            return Err(shown());
        }
        let bytes = STANDARD.decode(s).map_err(|_| shown())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| shown())?;
        PublicKey::from_bytes(bytes)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
