//! Event MACs: each stored event's leaf hash under a secret key that only Warden's servers
//! hold (sealed by the key-encryption key, never stored in the clear). A signed checkpoint
//! proves nothing before it changed; the MAC covers the events no checkpoint holds yet, so a
//! row appended by someone with database access but without the key is named and refused
//! before a server would sign over it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Hash;

/// The key events are MACed under: HMAC-SHA-256, 32 random bytes.
pub struct MacKey([u8; 32]);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl Drop for MacKey {
    fn drop(&mut self) {
        // Best effort: the key does not outlive its use in this value.
        self.0 = [0; 32];
    }
}

impl MacKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MacKey {
        MacKey(bytes)
    }

    /// The key's bytes, to seal.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The MAC of the event whose leaf hash is `leaf`.
    pub fn mac(&self, leaf: &Hash) -> Hash {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable_key_length());
        mac.update(b"warden audit event\n");
        mac.update(leaf);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `leaf`, compared in constant time.
    pub fn verify(&self, leaf: &Hash, tag: &Hash) -> bool {
        bool::from(self.mac(leaf).ct_eq(tag))
    }
}

/// HMAC takes keys of any length; 32 bytes cannot be refused.
#[expect(
    clippy::panic,
    reason = "HMAC accepts every key length, so this cannot run"
)]
fn unreachable_key_length() -> Hmac<Sha256> {
    panic!("HMAC refused a 32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_verify_only_under_their_key_and_leaf() {
        let key = MacKey::from_bytes([7; 32]);
        let leaf = [1; 32];
        let tag = key.mac(&leaf);
        assert!(key.verify(&leaf, &tag));
        assert!(!key.verify(&[2; 32], &tag));
        assert!(!MacKey::from_bytes([8; 32]).verify(&leaf, &tag));
        assert_eq!(format!("{key:?}"), "MacKey(..)");
    }
}
