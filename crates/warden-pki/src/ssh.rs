//! An Ed25519 SSH certificate authority issuing OpenSSH user and host certificates.

use rand::{CryptoRng, RngCore};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::{Algorithm, Certificate, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// Why a key or certificate could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// The public key text is not an OpenSSH public key.
    #[error("invalid SSH public key: {0}")]
    BadPublicKey(String),
    /// A principal holds characters OpenSSH cannot match.
    #[error("invalid principal `{0}`: use letters, digits, '.', '_', '-' and '@'")]
    BadPrincipal(String),
    /// The validity window is empty or inverted.
    #[error("invalid validity: {0}")]
    BadValidity(&'static str),
    /// The key material could not be encoded, decoded or used for signing.
    #[error("SSH key error: {0}")]
    Key(String),
}

fn key_err(e: impl std::fmt::Display) -> SshError {
    SshError::Key(e.to_string())
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Logs a person or service into hosts.
    User,
    /// Proves a host's identity to clients.
    Host,
}

/// A certificate to issue. Times are seconds since the Unix epoch, supplied by the caller.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// The key to certify.
    pub public_key: PublicKey,
    /// User or host.
    pub kind: Kind,
    /// Names the requester and the request, for sshd's logs (`user:alice req:…`).
    pub key_id: String,
    /// Unique per CA; what a KRL revokes.
    pub serial: u64,
    /// Logins (user) or host names and addresses (host).
    pub principals: Vec<String>,
    /// Not before.
    pub valid_after: u64,
    /// Not after.
    pub valid_before: u64,
    /// Extensions for user certificates (`permit-pty`, `permit-port-forwarding`, …).
    pub extensions: Vec<String>,
}

/// Parses an OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
pub fn parse_public_key(text: &str) -> Result<PublicKey, SshError> {
    PublicKey::from_openssh(text.trim()).map_err(|e| SshError::BadPublicKey(e.to_string()))
}

fn valid_principal(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b':'))
}

/// An SSH certificate authority. `Debug` never shows the private key.
pub struct SshCa {
    key: PrivateKey,
    signer: Signer,
}

/// The CA's Ed25519 key, expanded once. `ssh-key` would rebuild (and re-check) the key pair
/// from its bytes on every signature, which costs more than the signature itself.
struct Signer {
    key: ed25519_dalek::SigningKey,
    public: ssh_key::public::KeyData,
}

impl ed25519_dalek::Signer<ssh_key::Signature> for Signer {
    fn try_sign(
        &self,
        message: &[u8],
    ) -> Result<ssh_key::Signature, ed25519_dalek::SignatureError> {
        let signature = ed25519_dalek::Signer::sign(&self.key, message);
        ssh_key::Signature::new(Algorithm::Ed25519, signature.to_bytes().to_vec())
            .map_err(|_| ed25519_dalek::SignatureError::new())
    }
}

impl From<&Signer> for ssh_key::public::KeyData {
    fn from(signer: &Signer) -> Self {
        signer.public.clone()
    }
}

fn signer(key: &PrivateKey) -> Result<Signer, SshError> {
    let ssh_key::private::KeypairData::Ed25519(pair) = key.key_data() else {
        return Err(SshError::Key("the CA key is not Ed25519".to_owned()));
    };
    let expanded = ed25519_dalek::SigningKey::try_from(pair).map_err(key_err)?;
    Ok(Signer {
        key: expanded,
        public: key.public_key().key_data().clone(),
    })
}

impl std::fmt::Debug for SshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshCa")
            .field("public_key", &self.public_key_openssh())
            .finish_non_exhaustive()
    }
}

impl SshCa {
    /// A new Ed25519 CA key.
    pub fn generate(rng: &mut (impl CryptoRng + RngCore)) -> Result<Self, SshError> {
        let key = PrivateKey::random(rng, Algorithm::Ed25519).map_err(key_err)?;
        Ok(SshCa {
            signer: signer(&key)?,
            key,
        })
    }

    /// The private key in OpenSSH format, for sealing. Handle as a secret.
    pub fn to_openssh(&self) -> Result<Zeroizing<String>, SshError> {
        self.key.to_openssh(LineEnding::LF).map_err(key_err)
    }

    /// A CA from its OpenSSH private key.
    pub fn from_openssh(text: &str) -> Result<Self, SshError> {
        let key = PrivateKey::from_openssh(text).map_err(key_err)?;
        Ok(SshCa {
            signer: signer(&key)?,
            key,
        })
    }

    /// The CA's public key line, for `TrustedUserCAKeys` or `@cert-authority`.
    pub fn public_key_openssh(&self) -> String {
        self.key.public_key().to_openssh().unwrap_or_default()
    }

    /// The CA's public key.
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// Signs a certificate for `req`, with a random nonce from `rng`.
    pub fn issue(
        &self,
        req: &CertRequest,
        rng: &mut (impl CryptoRng + RngCore),
    ) -> Result<Certificate, SshError> {
        if req.valid_before <= req.valid_after {
            return Err(SshError::BadValidity(
                "valid_before must be after valid_after",
            ));
        }
        if req.principals.is_empty() {
            return Err(SshError::BadValidity(
                "a certificate needs at least one principal",
            ));
        }
        if let Some(bad) = req.principals.iter().find(|p| !valid_principal(p)) {
            return Err(SshError::BadPrincipal(bad.chars().take(64).collect()));
        }
        let mut b = Builder::new_with_random_nonce(
            rng,
            req.public_key.key_data().clone(),
            req.valid_after,
            req.valid_before,
        )
        .map_err(key_err)?;
        b.serial(req.serial).map_err(key_err)?;
        b.key_id(req.key_id.clone()).map_err(key_err)?;
        b.cert_type(match req.kind {
            Kind::User => CertType::User,
            Kind::Host => CertType::Host,
        })
        .map_err(key_err)?;
        for p in &req.principals {
            b.valid_principal(p.clone()).map_err(key_err)?;
        }
        if req.kind == Kind::User {
            for ext in &req.extensions {
                b.extension(ext.clone(), "").map_err(key_err)?;
            }
        }
        b.sign(&self.signer).map_err(key_err)
    }
}
