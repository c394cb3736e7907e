//! The audit log checked before a server writes to it or signs over it.
//!
//! What an attacker with the database but not the server's secrets can do, and what stops it:
//! - **Append a forged event** (and its tree nodes) while the server is stopped, hoping the
//!   server signs over it. Every event carries a MAC under a key sealed by the KEK
//!   ([`warden_audit::MacKey`]); at start every event after the last checkpoint must carry a
//!   valid one, and the server refuses to start naming the first that does not.
//! - **Change an event** not yet in a checkpoint: its stored leaf hash no longer matches its
//!   content, or the tree's stored nodes no longer match its leaves.
//! - **Delete the last events with their checkpoints.** The log left is consistent with
//!   itself, so the server keeps the newest checkpoint it signed outside the database
//!   (`DATA_DIR/audit-head`) and refuses to start when the log no longer extends it; export
//!   sinks receive every checkpoint too, and `warden audit verify --checkpoint NOTE` proves the
//!   log still extends a checkpoint kept anywhere else.
//! - **Delete the signing key** (kept in the database, sealed under the KEK) to have the server
//!   make a new one and re-sign a rewritten log: a log with checkpoints, or a data directory
//!   that has signed before, stops the server with one line instead.
//!
//! What it does not stop: someone holding the KEK and the database can write valid MACs; the
//! checkpoint copies outside (sinks, `audit-head`, an auditor's notes) are what proves a
//! rewrite then.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::RngCore;
use warden_audit::{Checkpoint, MacKey, SigningKey};
use warden_pki::seal::{Kek, open, seal};
use warden_store::Store;

use crate::StartError;
use crate::config::io_cause;

/// The newest checkpoint this server signed, kept beside its signing key.
pub const HEAD_FILE: &str = "audit-head";

fn failed(e: impl std::fmt::Display) -> StartError {
    StartError(format!("cannot check the audit log: {e}"))
}

/// The seal's purpose binds the first event the key covers: moving that boundary in the
/// database makes the key unopenable rather than exempting forged events.
fn purpose(from_seq: u64) -> String {
    format!("audit-mac:{from_seq}")
}

/// Opens the log's MAC key (making it on the first start, covering events from the next one
/// on) and has the store MAC every event it writes from now on. Returns the key and the first
/// event it covers.
pub async fn use_mac_key(
    store: &Store,
    kek: &Kek,
    data_dir: &Path,
) -> Result<(MacKey, u64), StartError> {
    let stored = match store.audit_mac_key().await.map_err(failed)? {
        Some(stored) => stored,
        // Deleting the key's row must not turn the MACs off for what is stored.
        None if store.audit_has_macs().await.map_err(failed)?
            || data_dir.join(HEAD_FILE).exists() =>
        {
            return Err(StartError(
                "the audit MAC key is missing from the database, but the log was written with one: restore the database from a backup".to_owned(),
            ));
        }
        None => {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(bytes.as_mut());
            let from_seq = store.audit_size().await.map_err(failed)? + 1;
            let sealed = seal(
                kek,
                &purpose(from_seq),
                bytes.as_ref(),
                &mut rand::rngs::OsRng,
            );
            store
                .insert_audit_mac_key(&sealed, from_seq)
                .await
                .map_err(failed)?
        }
    };
    let (sealed, from_seq) = stored;
    let opened = open(kek, &purpose(from_seq), &sealed).map_err(|_| {
        StartError(
            "the audit MAC key in the database cannot be opened with this KEK (or its first event was moved): start with the KEK the log was made with".to_owned(),
        )
    })?;
    let bytes: [u8; 32] = opened
        .as_slice()
        .try_into()
        .map_err(|_| StartError("the audit MAC key in the database is not 32 bytes".to_owned()))?;
    store.use_audit_mac(MacKey::from_bytes(bytes)).await;
    Ok((MacKey::from_bytes(bytes), from_seq))
}

/// Whether a missing signing key means it was deleted: the log holds signed checkpoints, or
/// this data directory has signed one before.
pub async fn key_must_exist(store: &Store, data_dir: &Path) -> Result<bool, StartError> {
    if data_dir.join(HEAD_FILE).exists() {
        return Ok(true);
    }
    Ok(store.latest_checkpoint().await.map_err(failed)?.is_some())
}

/// Checks the log before anything is written to it: the newest checkpoint this directory
/// signed is still a prefix of it, the newest stored checkpoint matches the tree, and every
/// event after it has its stored hash and (from `from_seq` on) a valid MAC.
pub async fn verify_at_start(
    store: &Store,
    key: &SigningKey,
    mac: &MacKey,
    from_seq: u64,
    data_dir: &Path,
) -> Result<(), StartError> {
    let size = store.audit_size().await.map_err(failed)?;
    let head_path = data_dir.join(HEAD_FILE);
    let head_size = match std::fs::read_to_string(&head_path) {
        Ok(note) => {
            let signed = key.verifier().open(&note).map_err(|e| {
                StartError(format!(
                    "the audit head {} does not verify with this server's key: {e}",
                    head_path.display()
                ))
            })?;
            check_extends(store, size, &signed, &head_path.display().to_string()).await?;
            signed.size
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            return Err(StartError(format!(
                "cannot read the audit head {}: {}",
                head_path.display(),
                io_cause(&e)
            )));
        }
    };
    // Only a checkpoint this server signed (kept beside its key, or stored and verifying with
    // it) vouches for the events before it; after it, every event's MAC is checked. Another
    // key's checkpoint is checked against the tree but vouches for nothing: anyone with the
    // database could have written it.
    let mut vouched = head_size;
    if let Some(stored) = store.latest_checkpoint().await.map_err(failed)? {
        let (checkpoint, ours) = match key.verifier().open(&stored.note) {
            Ok(c) => (c, true),
            Err(warden_audit::NoteError::NotSignedByKey(_)) => {
                let c = parse_unverified(&stored.note).ok_or_else(|| {
                    StartError(format!(
                        "the audit checkpoint of {} events is malformed",
                        stored.size
                    ))
                })?;
                (c, false)
            }
            Err(e) => {
                return Err(StartError(format!(
                    "the audit checkpoint of {} events does not verify: {e}",
                    stored.size
                )));
            }
        };
        if checkpoint.size != stored.size {
            return Err(StartError(format!(
                "the audit checkpoint stored for {} events says {}: it was changed",
                stored.size, checkpoint.size
            )));
        }
        check_extends(store, size, &checkpoint, "the newest stored checkpoint").await?;
        if ours {
            vouched = vouched.max(checkpoint.size);
        }
    }
    let checked = vouched;
    let mut tree = store.audit_frontier(checked).await.map_err(failed)?;
    let tail = store.audit_tail(checked, size).await.map_err(failed)?;
    for (expected, stored) in (checked + 1..).zip(&tail) {
        let seq = stored.event.seq;
        if seq != expected {
            return Err(StartError(format!(
                "audit event {expected} is missing (the next stored is {seq}): events were deleted; restore the database from a backup"
            )));
        }
        if stored.event.leaf_hash() != stored.leaf {
            return Err(StartError(format!(
                "audit event {seq} does not match its stored hash: it was changed after it was written"
            )));
        }
        if seq >= from_seq && !stored.mac.is_some_and(|tag| mac.verify(&stored.leaf, &tag)) {
            return Err(StartError(format!(
                "audit event {seq} (`{}` by {}) carries no valid MAC: it was not written by a Warden server; restore the database from a backup",
                stored.event.action, stored.event.actor_label
            )));
        }
        tree.push(stored.leaf);
    }
    if tree.size() != size {
        return Err(StartError(format!(
            "the audit log's head says {size} events but {} are stored: events were deleted",
            tree.size()
        )));
    }
    let stored_root = store.audit_frontier(size).await.map_err(failed)?.root();
    if tree.root() != stored_root {
        return Err(StartError(format!(
            "the audit tree's stored nodes do not match its events after {checked}: it was changed"
        )));
    }
    Ok(())
}

/// Whether the log of `size` events still extends `checkpoint`.
async fn check_extends(
    store: &Store,
    size: u64,
    checkpoint: &Checkpoint,
    what: &str,
) -> Result<(), StartError> {
    if checkpoint.size > size {
        return Err(StartError(format!(
            "the audit log ends at event {size}, but {what} holds {} events: events were deleted; restore the database from a backup",
            checkpoint.size
        )));
    }
    let root = store
        .audit_frontier(checkpoint.size)
        .await
        .map_err(failed)?
        .root();
    if root != checkpoint.root {
        return Err(StartError(format!(
            "the audit log no longer matches {what} of {} events: it was rewritten; restore the database from a backup",
            checkpoint.size
        )));
    }
    Ok(())
}

/// A checkpoint's body read without checking its signature (another replica's key).
fn parse_unverified(note: &str) -> Option<Checkpoint> {
    use base64::Engine;
    let mut lines = note.lines();
    let origin = lines.next()?.to_owned();
    let size = lines.next()?.parse().ok()?;
    let root = base64::engine::general_purpose::STANDARD
        .decode(lines.next()?)
        .ok()?;
    Some(Checkpoint {
        origin,
        size,
        root: root.as_slice().try_into().ok()?,
    })
}

/// Keeps `note` as the newest checkpoint this server signed: written beside, then renamed
/// over, so a crash leaves the old one or the new one.
pub fn keep_head(data_dir: &Path, note: &str) -> std::io::Result<()> {
    let path: PathBuf = data_dir.join(HEAD_FILE);
    let next = data_dir.join(format!("{HEAD_FILE}.next"));
    let _ = std::fs::remove_file(&next);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&next)?;
    file.write_all(note.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&next, &path)
}
