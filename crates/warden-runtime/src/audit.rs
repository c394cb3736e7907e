//! The running audit log: the signing key, the checkpoint signer, proofs and exports.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use serde::Deserialize;
use warden_audit::{
    Checkpoint, ExportLine, FORMAT, Hash, HexHash, NodeId, ProofError, SELECTION_FORMAT, Selection,
    SigningKey, VerifierKey, consistency_proof, inclusion_proof,
};
use warden_model::Timestamp;
use warden_store::{AuditContext, Store, StoreError, StoredCheckpoint};

use crate::StartError;
use crate::config::io_cause;

/// Events per chunk of an export stream.
const EXPORT_BATCH: u64 = 5_000;

/// Events per chunk of a selection's stream: each carries its inclusion proof.
const SELECTION_BATCH: u32 = 1_000;

/// The key file an earlier version kept in the data directory: the log's name and the Ed25519
/// seed.
#[derive(Deserialize)]
struct KeyFile {
    name: String,
    seed: HexHash,
}

/// What the signing key's seal is bound to.
const SIGNING_PURPOSE: &str = "audit-signing-key";

/// The log's signing key: kept once in the database, sealed under the KEK, so every replica
/// signs as the same log and `warden audit key` is the same whichever answers. The first start
/// makes it, or keeps the one this data directory holds from before (`audit-signing.key`);
/// when two servers start at once, the first to keep one wins and the other uses it. When it
/// `must_exist` (the log was signed) and neither the database nor this directory holds it, the
/// server stops: Warden will not sign the log with a new key.
pub async fn open_or_create_key(
    store: &Store,
    kek: &warden_pki::seal::Kek,
    data_dir: &Path,
    origin: &str,
    must_exist: bool,
) -> Result<SigningKey, StartError> {
    let stored = match store.audit_signing_key().await.map_err(key_error)? {
        Some(stored) => stored,
        None => {
            let (name, seed) = match read_key_file(data_dir)? {
                Some((name, seed)) => {
                    check_signed_the_log(store, &name, &seed).await?;
                    (name, seed)
                }
                None if must_exist => {
                    return Err(StartError(
                        "the audit signing key is missing from the database, but this log was signed with it: restore the database from a backup, or start once a server whose data directory still holds audit-signing.key (Warden will not sign the log with a new key)".to_owned(),
                    ));
                }
                None => {
                    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, seed.as_mut());
                    (origin.to_owned(), seed)
                }
            };
            let sealed =
                warden_pki::seal::seal(kek, SIGNING_PURPOSE, seed.as_ref(), &mut rand::rngs::OsRng);
            store
                .insert_audit_signing_key(&name, &sealed)
                .await
                .map_err(key_error)?
        }
    };
    let (name, sealed) = stored;
    let opened = warden_pki::seal::open(kek, SIGNING_PURPOSE, &sealed).map_err(|_| {
        StartError(
            "the audit signing key in the database cannot be opened with this KEK: start with the KEK the log was made with".to_owned(),
        )
    })?;
    let seed: [u8; 32] = opened.as_slice().try_into().map_err(|_| {
        StartError("the audit signing key in the database is not 32 bytes".to_owned())
    })?;
    if name != origin {
        tracing::warn!(key = %name, configured = origin, "audit.origin differs from the signing key's name; the key's name is kept");
    }
    SigningKey::from_seed(&name, &seed).map_err(|e| StartError(format!("audit signing key: {e}")))
}

/// A key file from before is kept only if it signed the log's newest checkpoint: a key that
/// did not would sign a second log under the same name.
async fn check_signed_the_log(
    store: &Store,
    name: &str,
    seed: &[u8; 32],
) -> Result<(), StartError> {
    let Some(latest) = store.latest_checkpoint().await.map_err(key_error)? else {
        return Ok(());
    };
    let key = SigningKey::from_seed(name, seed)
        .map_err(|e| StartError(format!("audit signing key: {e}")))?;
    key.verifier().open(&latest.note).map(|_| ()).map_err(|_| {
        StartError(format!(
            "audit-signing.key in the data directory did not sign this log (checkpoint {} does not verify with it): start first the server whose key signed the newest checkpoint",
            latest.size
        ))
    })
}

fn key_error(e: StoreError) -> StartError {
    StartError(format!("cannot read the audit signing key: {e}"))
}

/// A signing key's name and seed.
type NamedSeed = (String, zeroize::Zeroizing<[u8; 32]>);

/// The signing key an earlier version kept in `DATA_DIR/audit-signing.key`, if it is there.
fn read_key_file(data_dir: &Path) -> Result<Option<NamedSeed>, StartError> {
    let path = data_dir.join("audit-signing.key");
    let shown = path.display();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let file: KeyFile = serde_json::from_str(&text)
                .map_err(|e| StartError(format!("audit signing key {shown} is unreadable: {e}")))?;
            Ok(Some((file.name, zeroize::Zeroizing::new(file.seed.0))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StartError(format!(
            "cannot read audit signing key {shown}: {}",
            io_cause(&e)
        ))),
    }
}

/// The audit log as the server runs it.
#[derive(Debug, Clone)]
pub struct AuditLog {
    store: Arc<Store>,
    key: Arc<SigningKey>,
    /// Where the newest checkpoint this server signed is kept (`None`: nowhere).
    head_dir: Option<Arc<Path>>,
}

/// Why an audit read failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A proof was asked for outside the tree.
    #[error("{0}")]
    Proof(#[from] ProofError),
    /// An archive file could not be written.
    #[error("{0}")]
    Io(String),
}

impl AuditLog {
    /// The log over `store`, signing checkpoints with `key`; a signing server keeps the last
    /// signed head in `head_dir` (`DATA_DIR/audit-head`).
    pub fn new(store: Arc<Store>, key: SigningKey, head_dir: Option<&Path>) -> Self {
        AuditLog {
            store,
            key: Arc::new(key),
            head_dir: head_dir.map(Arc::from),
        }
    }

    /// The public key, in signed-note verifier form.
    pub fn verifier(&self) -> VerifierKey {
        self.key.verifier()
    }

    /// Finishes a compliance evidence bundle, signed with the log's key: the zip's bytes.
    pub fn sign_evidence(
        &self,
        bundle: warden_compliance::bundle::Builder,
    ) -> Result<Vec<u8>, String> {
        bundle.finish(&self.key)
    }

    /// Signs the current tree if no checkpoint covers it yet; returns the newest checkpoint.
    pub async fn sign_now(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let size = self.store.audit_size().await?;
        let latest = self.store.latest_checkpoint().await?;
        if latest.as_ref().is_some_and(|c| c.size >= size) || size == 0 {
            return Ok(latest);
        }
        let root = self.store.audit_frontier(size).await?.root();
        let checkpoint = Checkpoint {
            origin: self.key.name().to_owned(),
            size,
            root,
        };
        let note = self.key.sign(&checkpoint);
        let time = Timestamp::from_system(SystemTime::now());
        self.store.insert_checkpoint(size, time, &note).await?;
        if let Some(dir) = &self.head_dir
            && let Err(e) = crate::integrity::keep_head(dir, &note)
        {
            tracing::error!(error = %e, "cannot keep the newest audit checkpoint in the data directory");
        }
        Ok(Some(StoredCheckpoint { size, time, note }))
    }

    /// Signs a checkpoint every `interval` while events arrive and this replica holds the
    /// signer's lease, until the task is dropped. The lease lasts three intervals (at least
    /// 3 s) and is renewed at each one: one replica signs at a time, and when it dies another
    /// takes over once its lease has run out.
    pub async fn run_signer(self, interval: Duration) {
        let me = warden_store::write::new_id();
        let lease = (interval * 3).max(Duration::from_secs(3));
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let now = Timestamp::from_system(SystemTime::now());
            match self
                .store
                .take_audit_signer(&me, now, now.plus(lease))
                .await
            {
                Ok(true) => {}
                Ok(false) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "cannot take the audit signer's lease");
                    continue;
                }
            }
            if let Err(err) = self.sign_now().await {
                tracing::error!(error = %err, "cannot sign an audit checkpoint");
            }
        }
    }

    /// Runs a proof builder twice: once to learn which stored nodes it needs, then with them
    /// (each node read once, a few hundred a query).
    async fn prove<T>(
        &self,
        build: impl Fn(&mut dyn FnMut(NodeId) -> Option<Hash>) -> Result<T, ProofError>,
    ) -> Result<T, AuditError> {
        const NODES_A_QUERY: usize = 400;
        let mut wanted = std::collections::BTreeSet::new();
        build(&mut |id| {
            wanted.insert(id);
            Some([0u8; 32])
        })?;
        let wanted: Vec<NodeId> = wanted.into_iter().collect();
        let mut nodes = BTreeMap::new();
        for chunk in wanted.chunks(NODES_A_QUERY) {
            nodes.extend(self.store.audit_nodes(chunk).await?);
        }
        Ok(build(&mut |id| nodes.get(&id).copied())?)
    }

    /// Event `seq` (1-based) as stored, if the log holds it.
    pub async fn event(&self, seq: u64) -> Result<Option<warden_audit::AuditEvent>, AuditError> {
        let Some(after) = seq.checked_sub(1) else {
            return Ok(None);
        };
        let filter = warden_store::EventFilter {
            after_seq: Some(after),
            ..Default::default()
        };
        let events = self.store.events(&filter, 1).await?;
        Ok(events.into_iter().find(|e| e.seq == seq))
    }

    /// The audit path of event `seq` (1-based) in the tree of `size` events.
    pub async fn inclusion(&self, seq: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        let mut proofs = self.inclusions(&[seq], size).await?;
        Ok(proofs.pop().unwrap_or_default())
    }

    /// The audit paths of events `seqs` in the tree of `size` events, in their order: the
    /// nodes they share are read once.
    pub async fn inclusions(&self, seqs: &[u64], size: u64) -> Result<Vec<Vec<Hash>>, AuditError> {
        self.check_size(size).await?;
        self.prove(|node| {
            seqs.iter()
                .map(|&seq| {
                    let index = seq.checked_sub(1).ok_or_else(|| {
                        ProofError::OutOfRange("sequence numbers start at 1".into())
                    })?;
                    inclusion_proof(index, size, &mut *node)
                })
                .collect()
        })
        .await
    }

    /// The consistency proof from the tree of `old` events to the tree of `new` events.
    pub async fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(new).await?;
        self.prove(|node| consistency_proof(old, new, node)).await
    }

    async fn check_size(&self, size: u64) -> Result<(), AuditError> {
        let current = self.store.audit_size().await?;
        if size > current {
            return Err(ProofError::OutOfRange(format!(
                "the log has {current} events, not {size}"
            ))
            .into());
        }
        Ok(())
    }

    /// The head of an export of events `first..=last`: header, prefix and checkpoints. Signs
    /// the current tree first, so a checkpoint covers the last event.
    pub async fn export_head(&self, first: u64, last: u64) -> Result<Vec<ExportLine>, AuditError> {
        self.sign_now().await?;
        let prefix = self.store.audit_frontier(first - 1).await?;
        let mut lines = vec![
            ExportLine::Header {
                format: FORMAT.to_owned(),
                origin: self.key.name().to_owned(),
                first_seq: first,
                last_seq: last,
                filter: None,
            },
            ExportLine::Prefix {
                size: first - 1,
                frontier: prefix.nodes().iter().map(|h| HexHash(*h)).collect(),
            },
        ];
        let inside = self.store.checkpoints_between(first - 1, last).await?;
        let covers_end = inside.last().is_some_and(|c| c.size == last);
        lines.extend(inside.into_iter().map(|c| ExportLine::Checkpoint {
            note: c.note,
            consistency: Vec::new(),
        }));
        let after = match covers_end {
            true => None,
            false => self.store.checkpoint_at_or_after(last + 1).await?,
        };
        if let Some(after) = after {
            let proof = self.consistency(last, after.size).await?;
            lines.push(ExportLine::Checkpoint {
                note: after.note,
                consistency: proof.into_iter().map(HexHash).collect(),
            });
        }
        Ok(lines)
    }

    /// Events `from..=to` as export lines, one JSON object per line.
    pub async fn export_events(&self, from: u64, to: u64) -> Result<Bytes, AuditError> {
        let mut out = Vec::new();
        for (event, leaf) in self.store.event_range(from, to).await? {
            out.extend_from_slice(warden_audit::event_line(&event, &leaf).as_bytes());
            out.push(b'\n');
        }
        Ok(Bytes::from(out))
    }

    /// Writes a whole export of `first..=last` (its `head`, then the events batch by batch)
    /// through `write`.
    pub async fn write_export(
        &self,
        head: &[ExportLine],
        (first, last): (u64, u64),
        mut write: impl FnMut(&[u8]) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        for line in head {
            let mut text = serde_json::to_vec(line).unwrap_or_default();
            text.push(b'\n');
            write(&text)?;
        }
        let mut next = first;
        while next <= last {
            let to = last.min(next.saturating_add(EXPORT_BATCH - 1));
            write(&self.export_events(next, to).await?)?;
            next = to + 1;
        }
        Ok(())
    }

    /// Moves events older than `retention` into an archive file in `dir`, then removes them
    /// from the database in an audited transaction. The file is a complete export (verifiable
    /// offline with the public key) and is on disk, synced, before anything is removed.
    pub async fn archive_once(
        &self,
        retention: Duration,
        dir: &Path,
    ) -> Result<Option<(u64, u64)>, AuditError> {
        let cutoff = SystemTime::now()
            .checked_sub(retention)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let (Some(first), Some(last)) = (
            self.store.audit_first_seq().await?,
            self.store
                .last_seq_before(Timestamp::from_system(cutoff))
                .await?,
        ) else {
            return Ok(None);
        };
        if last < first {
            return Ok(None);
        }
        let head = self.export_head(first, last).await?;
        let name = format!("archive-{first:012}-{last:012}.jsonl");
        let io = |e: std::io::Error| {
            AuditError::Io(format!(
                "cannot write audit archive {}: {e}",
                dir.join(&name).display()
            ))
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let partial = dir.join(format!("{name}.partial"));
        let mut file = std::fs::File::create(&partial).map_err(io)?;
        let mut digest = <sha2::Sha256 as sha2::Digest>::new();
        let mut write = |bytes: &[u8]| -> std::io::Result<()> {
            sha2::Digest::update(&mut digest, bytes);
            file.write_all(bytes)
        };
        self.write_export(&head, (first, last), |bytes| write(bytes).map_err(io))
            .await?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&partial, dir.join(&name)).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        let sha = String::from(HexHash(sha2::Digest::finalize(digest).into()));
        let ctx = AuditContext {
            actor: warden_model::Actor::System,
            request_id: format!("retention-{first}-{last}"),
            source: None,
            now: Timestamp::from_system(SystemTime::now()),
        };
        self.store
            .archive_range(&ctx, first, last, &name, &sha)
            .await?;
        tracing::info!(first, last, file = %name, "archived audit events");
        Ok(Some((first, last)))
    }

    /// Archives old events every `every`, until the task is dropped.
    pub async fn run_retention(
        self,
        retention: Duration,
        dir: std::path::PathBuf,
        every: Duration,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(err) = self.archive_once(retention, &dir).await {
                tracing::error!(error = %err, "audit archiving failed; nothing was removed");
            }
        }
    }

    /// The head of a selection of the events of `first..=last` that match `filter`: its
    /// header and the checkpoint its events are proven in, signed now so that it covers
    /// `last`. Returns the checkpoint's size too.
    pub async fn selection_head(
        &self,
        (first, last): (u64, u64),
        filter: Selection,
    ) -> Result<(Vec<ExportLine>, u64), AuditError> {
        let checkpoint = self
            .sign_now()
            .await?
            .ok_or_else(|| ProofError::OutOfRange("the log has no event yet".into()))?;
        let lines = vec![
            ExportLine::Header {
                format: SELECTION_FORMAT.to_owned(),
                origin: self.key.name().to_owned(),
                first_seq: first,
                last_seq: last,
                filter: Some(filter),
            },
            ExportLine::Checkpoint {
                note: checkpoint.note,
                consistency: Vec::new(),
            },
        ];
        Ok((lines, checkpoint.size))
    }

    /// The next events after `after` (up to `last`) that match `filter`, as selection lines
    /// with their inclusion proofs in the tree of `size`; and the last one's number, or
    /// `None` when no more match.
    pub async fn selected_events(
        &self,
        filter: &Selection,
        (after, last): (u64, u64),
        size: u64,
    ) -> Result<(Bytes, Option<u64>), AuditError> {
        let query = warden_store::EventFilter {
            actor: filter.actor.clone(),
            action: filter.action.clone(),
            target: filter.target.clone(),
            outcome: filter.outcome.clone(),
            after_seq: Some(after),
            before_seq: Some(last.saturating_add(1)),
            ..Default::default()
        };
        let events = self.store.events(&query, SELECTION_BATCH).await?;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        let paths = self.inclusions(&seqs, size).await?;
        let mut out = Vec::with_capacity(events.len() * 2048);
        for (event, path) in events.iter().zip(&paths) {
            warden_audit::write_selected_event_line(&mut out, event, path);
            out.push(b'\n');
        }
        let more = events.len() == SELECTION_BATCH as usize;
        Ok((Bytes::from(out), seqs.last().copied().filter(|_| more)))
    }

    /// A stream of a selection: its `head`, then the events of `first..=last` that match
    /// `filter`, proven in the tree of `size`.
    pub fn selection_stream(
        self,
        (head, size): (Vec<ExportLine>, u64),
        (first, last): (u64, u64),
        filter: Selection,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        let head = head_stream(&head);
        let filter = Arc::new(filter);
        let body = futures_util::stream::unfold(Some(first - 1), move |after| {
            let (log, filter) = (self.clone(), filter.clone());
            async move {
                let after = after?;
                match log.selected_events(&filter, (after, last), size).await {
                    Ok((chunk, next)) => Some((Ok(chunk), next)),
                    Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
                }
            }
        });
        futures_util::StreamExt::chain(head, body)
    }

    /// A stream of a whole export of `first..=last`.
    pub fn export_stream(
        self,
        head: Vec<ExportLine>,
        first: u64,
        last: u64,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        let head = head_stream(&head);
        let body = futures_util::stream::unfold(first, move |next| {
            let log = self.clone();
            async move {
                if next > last {
                    return None;
                }
                let to = last.min(next.saturating_add(EXPORT_BATCH - 1));
                let chunk = log
                    .export_events(next, to)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()));
                Some((chunk, to + 1))
            }
        });
        futures_util::StreamExt::chain(head, body)
    }
}

/// An export's head lines, as the first chunk of its stream.
fn head_stream(
    head: &[ExportLine],
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    let mut text = Vec::new();
    for line in head {
        let _ = serde_json::to_writer(&mut text, line);
        text.push(b'\n');
    }
    futures_util::stream::once(async move { Ok(Bytes::from(text)) })
}
