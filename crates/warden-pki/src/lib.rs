//! Warden's certificate authorities, without network or clock.
//!
//! - [`seal`]: envelope encryption of CA private keys at rest. Each key is encrypted with its
//!   own random AES-256-GCM data key, which is itself encrypted under the key-encryption key
//!   (KEK) read from the operator's file. The database holds only sealed blobs.
//! - [`ssh`]: an Ed25519 SSH certificate authority issuing OpenSSH user and host certificates.
//! - [`krl`]: OpenSSH key revocation lists (revoked serials and key ids) that stock sshd reads
//!   through `RevokedKeys`.
//! - [`x509`]: an ECDSA P-256 root and issuing CA for mutual TLS, signing SPIFFE workload
//!   certificates from CSRs.
//!
//! Threat model: a reader of the database or its backups learns no CA private key without the
//! KEK; a wrong KEK is detected (authenticated encryption) and never yields a key. Callers pass
//! in time and randomness; nothing here reads the clock. Security warning: the caller decides
//! which principals and lifetimes a requester may have; this crate signs what it is asked to.

pub mod break_glass;
pub mod krl;
pub mod seal;
pub mod ssh;
pub mod x509;
