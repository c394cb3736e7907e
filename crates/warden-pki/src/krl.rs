//! OpenSSH key revocation lists (PROTOCOL.krl): a certificates section for one CA with the
//! revoked serials and key ids. Stock sshd checks it on every login through `RevokedKeys`, and
//! `ssh-keygen -Q -f KRL CERT` reads it. Building is deterministic: serials and key ids are
//! sorted and deduplicated, so the same revocations give the same bytes (and the same ETag).

use ssh_key::PublicKey;

use crate::ssh::SshError;

const MAGIC: &[u8; 8] = b"SSHKRL\n\0";
const FORMAT_VERSION: u32 = 1;
const SECTION_CERTIFICATES: u8 = 1;
const CERT_SERIAL_LIST: u8 = 0x20;
const CERT_KEY_ID: u8 = 0x23;

/// What to revoke for one CA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    /// Revoked certificate serials.
    pub serials: Vec<u64>,
    /// Revoked certificate key ids.
    pub key_ids: Vec<String>,
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(bytes);
}

/// Builds a KRL. `version` must grow with every change; `generated` is seconds since the epoch.
pub fn build(
    ca: &PublicKey,
    revoked: &Revocations,
    version: u64,
    generated: u64,
) -> Result<Vec<u8>, SshError> {
    build_many(&[(ca, revoked)], version, generated)
}

/// Builds a KRL with one certificates section per CA (during a rotation several CA keys are
/// trusted, and each one's revocations must be listed under it).
pub fn build_many(
    sections: &[(&PublicKey, &Revocations)],
    version: u64,
    generated: u64,
) -> Result<Vec<u8>, SshError> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    put_u64(&mut out, version);
    put_u64(&mut out, generated);
    put_u64(&mut out, 0);
    put_string(&mut out, b"");
    put_string(&mut out, b"Warden");
    for (ca, revoked) in sections {
        out.push(SECTION_CERTIFICATES);
        put_string(&mut out, &certificates_section(ca, revoked)?);
    }
    Ok(out)
}

fn certificates_section(ca: &PublicKey, revoked: &Revocations) -> Result<Vec<u8>, SshError> {
    let mut serials = revoked.serials.clone();
    serials.sort_unstable();
    serials.dedup();
    let mut key_ids = revoked.key_ids.clone();
    key_ids.sort();
    key_ids.dedup();

    let ca_blob = ca.to_bytes().map_err(|e| SshError::Key(e.to_string()))?;
    let mut certs = Vec::new();
    put_string(&mut certs, &ca_blob);
    put_string(&mut certs, b"");
    if !serials.is_empty() {
        let mut list = Vec::with_capacity(serials.len() * 8);
        for s in &serials {
            put_u64(&mut list, *s);
        }
        certs.push(CERT_SERIAL_LIST);
        put_string(&mut certs, &list);
    }
    if !key_ids.is_empty() {
        let mut ids = Vec::new();
        for id in &key_ids {
            put_string(&mut ids, id.as_bytes());
        }
        certs.push(CERT_KEY_ID);
        put_string(&mut certs, &ids);
    }

    Ok(certs)
}
