//! Warden's tamper-evident audit log, without I/O.
//!
//! Events are leaves of a Merkle tree hashed as in RFC 9162 (Certificate Transparency v2):
//! a leaf is `SHA-256(0x00 || canonical JSON of the event)`, an inner node
//! `SHA-256(0x01 || left || right)`. Warden signs checkpoints of the tree (origin, size, root)
//! with Ed25519 in the transparency-log signed-note format, so anyone holding the public key
//! can check that an export, or the live log, is exactly what was signed.
//!
//! Threat model: whoever controls the database or an export file can change, delete, insert or
//! reorder events, but cannot produce a signature. [`verify`] therefore detects every such
//! change up to the last signed checkpoint. It names the first sequence number that is wrong
//! when the tampering leaves evidence at that event (content that no longer matches its recorded
//! leaf hash, a gap, a repeat); an attacker who also recomputes every leaf hash is caught at the
//! first checkpoint after the change, and the report names that range. Events after the last
//! checkpoint are not yet protected; Warden signs at least every 10 seconds while events flow.
//! Nothing here reads the clock: times are fields of the events.

mod checkpoint;
mod event;
mod export;
mod mac;
mod tree;
mod verify;

pub use checkpoint::{Checkpoint, NoteError, SigningKey, VerifierKey};
pub use event::{AuditEvent, Outcome, UnknownOutcome, canonical_json};
pub use export::{
    ExportLine, FORMAT, HexHash, SELECTION_FORMAT, Selection, event_line, write_event_line,
    write_selected_event_line,
};
pub use mac::MacKey;
pub use tree::{
    Frontier, Hash, NodeId, ProofError, consistency_proof, frontier_ids, inclusion_proof,
    leaf_hash, node_hash, root_from_nodes, verify_consistency, verify_inclusion,
};
pub use verify::{Report, VerifyError, verify, verify_events};
