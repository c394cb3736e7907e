//! Group commit: the one write path, batched.
//!
//! Every mutation runs its change inside the writer's open transaction (in a savepoint of its
//! own), and its audit event joins the batch. While one batch commits, new writers wait; when
//! the commit ends they run one after another in the next transaction, and the last of them
//! commits it. A writer is answered only after the commit that holds its change and its event
//! is durable, so an acknowledged change always has its event, and a lost batch (a crash, a
//! failed commit) was never acknowledged. Under light load a batch is one change; under heavy
//! load one fsync covers hundreds.
//!
//! A write must run to completion: a caller cancelled while its change runs would leave the
//! batch half-done. Callers that can be cancelled (HTTP handlers whose client went away) run
//! their writes in a task of their own.
//!
//! Sequence numbers and tree nodes are computed in memory from the frontier of the open
//! transaction and written at commit. The frontier is checked against `audit_head` at the start
//! of each batch (locked `FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so other
//! processes writing the same database are picked up.

use std::mem;

use sqlx::{Any, AnyConnection, Executor, Row, Transaction};
use tokio::sync::{MutexGuard, oneshot};
use warden_audit::{AuditEvent, Frontier, Hash, HexHash, NodeId, Outcome, canonical_json};

use crate::audit::{Action, AuditContext, load_frontier, to_i64, to_u64};
use crate::{Backend, Store, StoreError};

/// The writer's state, behind the store's writer mutex.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    tx: Option<Transaction<'static, Any>>,
    /// The tree including the open batch's events; `None` when it must be reloaded.
    tree: Option<Frontier>,
    /// The batch's events as rows of the `audit_log` insert: a JSON array each, written once.
    rows: String,
    /// How many events `rows` holds.
    pending: usize,
    /// Deferred `ssh_certificates` rows, a JSON array being built.
    certificates: String,
    nodes: Vec<(NodeId, Hash)>,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
    /// A statement failed in a way that leaves the transaction unusable.
    poisoned: Option<String>,
    committing: bool,
    /// Writers that have arrived and not yet run their change.
    in_line: usize,
    /// The actions of the batch's events, told to subscribers once it commits.
    actions: Vec<&'static str>,
    /// The key each event's MAC is made with, once the server has opened it.
    pub(crate) mac: Option<warden_audit::MacKey>,
}

/// What a write does besides its change.
pub(crate) struct Entry<'a> {
    pub ctx: &'a AuditContext,
    pub action: Action,
    /// Run the change in a savepoint (a real change); `false` for a plain record.
    pub isolate: bool,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// A row for `ssh_certificates`, written with the batch (a JSON array, in column order)
    /// when the change succeeds: one bulk insert per batch instead of a statement per change.
    pub certificate: Option<String>,
    /// Details the change learned as it ran, merged into the event's when it succeeds.
    pub learned: Option<std::sync::Arc<std::sync::Mutex<serde_json::Value>>>,
}

/// The longest target an event keeps, in bytes: targets can carry what a caller sent.
pub const MAX_TARGET_BYTES: usize = 256;
/// The longest reason an event keeps, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub(crate) fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

fn bounded_action(action: Action) -> Action {
    Action {
        target: bounded(action.target, MAX_TARGET_BYTES),
        ..action
    }
}

impl<'a> Entry<'a> {
    /// A change to Warden's state, run in a savepoint of its own.
    pub(crate) fn change(ctx: &'a AuditContext, action: Action) -> Self {
        Entry {
            ctx,
            action: bounded_action(action),
            isolate: true,
            outcome: Outcome::Success,
            reason: None,
            certificate: None,
            learned: None,
        }
    }

    /// An event with no change of its own (a denial, a sensitive read).
    pub(crate) fn record(
        ctx: &'a AuditContext,
        action: Action,
        outcome: Outcome,
        reason: Option<String>,
    ) -> Self {
        Entry {
            ctx,
            action: bounded_action(action),
            isolate: false,
            outcome,
            reason: reason.map(|r| bounded(r, MAX_REASON_BYTES)),
            certificate: None,
            learned: None,
        }
    }
}

impl Store {
    /// Runs `change` and appends its event in the current batch; returns once both are
    /// committed. A change that fails for the caller's mistake is undone (its savepoint rolled
    /// back) and recorded as a failure.
    pub(crate) async fn write<T>(
        &self,
        entry: Entry<'_>,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut w = self.writer.lock().await;
        w.in_line += 1;
        while w.committing {
            let done = self.commit_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            drop(w);
            done.await;
            w = self.writer.lock().await;
        }
        let result = self.run_in_batch(&mut w, entry, change).await;
        w.in_line -= 1;
        let (tell, told) = oneshot::channel();
        w.waiters.push(tell);
        if w.in_line == 0 {
            self.commit_batch(w).await;
        } else {
            drop(w);
        }
        match told.await {
            Ok(Ok(())) => result,
            Ok(Err(why)) => Err(StoreError::Commit(why)),
            Err(_) => Err(StoreError::Commit("the writer stopped".to_owned())),
        }
    }

    async fn run_in_batch<T>(
        &self,
        w: &mut Writer,
        entry: Entry<'_>,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(why) = &w.poisoned {
            return Err(StoreError::Commit(why.clone()));
        }
        if w.tx.is_none()
            && let Err(e) = self.open_batch(w).await
        {
            w.poisoned = Some(e.to_string());
            return Err(e);
        }
        let Some(tx) = w.tx.as_mut() else {
            return Err(StoreError::Commit("no open transaction".to_owned()));
        };
        let conn: &mut AnyConnection = tx;
        if entry.isolate
            && let Err(e) = conn.execute("SAVEPOINT change").await
        {
            w.poisoned = Some(e.to_string());
            return Err(e.into());
        }
        let result = change(conn).await;
        if entry.isolate {
            let end = if result.is_ok() {
                "RELEASE SAVEPOINT change"
            } else {
                "ROLLBACK TO SAVEPOINT change"
            };
            let mut ended = conn.execute(end).await.map(|_| ());
            if result.is_err() && ended.is_ok() {
                ended = conn.execute("RELEASE SAVEPOINT change").await.map(|_| ());
            }
            if let Err(e) = ended {
                w.poisoned = Some(e.to_string());
                return Err(e.into());
            }
        }
        match result {
            Ok(value) => {
                let mut action = entry.action;
                if let Some(learned) = &entry.learned
                    && let Ok(mut slot) = learned.lock()
                {
                    match (&mut action.details, slot.take()) {
                        (_, serde_json::Value::Null) => {}
                        (serde_json::Value::Object(have), serde_json::Value::Object(more)) => {
                            have.extend(more);
                        }
                        (details, more) => *details = more,
                    }
                }
                push_event(w, entry.ctx, &action, entry.outcome, entry.reason)?;
                if let Some(row) = entry.certificate {
                    w.certificates
                        .push(if w.certificates.is_empty() { '[' } else { ',' });
                    w.certificates.push_str(&row);
                }
                Ok(value)
            }
            Err(err) => {
                if err.is_user_error() {
                    push_event(
                        w,
                        entry.ctx,
                        &entry.action,
                        Outcome::Failure,
                        Some(err.to_string()),
                    )?;
                }
                Err(err)
            }
        }
    }

    /// Begins the batch's transaction, takes the log's head, and checks the cached tree.
    async fn open_batch(&self, w: &mut Writer) -> Result<(), StoreError> {
        let (begin, head) = match self.location.backend() {
            Backend::Sqlite => (
                "BEGIN IMMEDIATE",
                "SELECT size FROM audit_head WHERE id = 1",
            ),
            Backend::Postgres => (
                "BEGIN",
                "SELECT size FROM audit_head WHERE id = 1 FOR UPDATE",
            ),
        };
        let mut tx = self.pool.begin_with(begin).await?;
        let row = sqlx::query(head).fetch_one(&mut *tx).await?;
        let size = to_u64(row.try_get("size")?, "size")?;
        if w.tree.as_ref().is_none_or(|t| t.size() != size) {
            w.tree = Some(load_frontier(&mut tx, size).await?);
        }
        w.tx = Some(tx);
        Ok(())
    }

    /// Writes the batch's events and nodes, moves the head, commits, and answers every writer
    /// of the batch with the outcome.
    async fn commit_batch(&self, mut w: MutexGuard<'_, Writer>) {
        let tx = w.tx.take();
        let rows = mem::take(&mut w.rows);
        let pending = mem::take(&mut w.pending);
        let certificates = mem::take(&mut w.certificates);
        let nodes = mem::take(&mut w.nodes);
        let waiters = mem::take(&mut w.waiters);
        let mut actions = mem::take(&mut w.actions);
        actions.sort_unstable();
        actions.dedup();
        let poisoned = w.poisoned.take();
        let size = w.tree.as_ref().map(Frontier::size);
        w.committing = true;
        drop(w);

        let outcome = match (tx, poisoned, size) {
            (Some(tx), None, Some(size)) => flush(
                tx,
                self.location.backend(),
                &rows,
                pending,
                &certificates,
                &nodes,
                (size, &actions),
            )
            .await
            .map_err(|e| e.to_string()),
            (Some(tx), Some(why), _) => {
                let _ = tx.rollback().await;
                Err(why)
            }
            (None, Some(why), _) => Err(why),
            _ => Err("the batch has no transaction".to_owned()),
        };
        if let Err(why) = &outcome {
            tracing::error!(error = %why, events = pending, "audit batch failed; none of its changes happened");
        }
        let mut w = self.writer.lock().await;
        w.committing = false;
        if outcome.is_err() {
            w.tree = None;
        }
        drop(w);
        self.commit_done.notify_waiters();
        if outcome.is_ok() && !actions.is_empty() && self.changes.receiver_count() > 0 {
            let _ = self.changes.send(std::sync::Arc::new(
                actions.iter().map(|a| (*a).to_owned()).collect(),
            ));
        }
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }
}

fn push_event(
    w: &mut Writer,
    ctx: &AuditContext,
    action: &Action,
    outcome: Outcome,
    reason: Option<String>,
) -> Result<(), StoreError> {
    let tree = w
        .tree
        .as_mut()
        .ok_or_else(|| StoreError::Commit("the audit tree is not loaded".to_owned()))?;
    // Only changes reach the processes that follow commits: a record changed nothing.
    if let crate::audit::Name::Change(change) = action.name {
        w.actions.push(change.as_str());
    }
    let event = AuditEvent {
        seq: tree.size() + 1,
        time: ctx.now.as_millis(),
        actor: serde_json::to_value(&ctx.actor)
            .map_err(|e| StoreError::Corrupt(format!("actor: {e}")))?,
        actor_label: ctx.actor.to_string(),
        auth: serde_json::to_value(ctx.actor.auth_method())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        action: action.name.as_str().to_owned(),
        target: action.target.clone(),
        outcome,
        reason,
        request_id: ctx.request_id.clone(),
        source: ctx.source.clone(),
        details: action.details.clone(),
    };
    // One canonical encoding per event: the leaf hashes it, and the row reuses its parts.
    let actor_json = canonical_json(&event.actor);
    let details_json = canonical_json(&event.details);
    let leaf = event.leaf_hash();
    w.nodes.extend(tree.push(leaf));
    // Appends `v` as a JSON string; serde_json's escaping cannot fail on a &str.
    fn text(row: &mut String, v: &str) {
        let escaped = serde_json::to_string(v).unwrap_or_default();
        row.push_str(&escaped);
        row.push(',');
    }
    let row = &mut w.rows;
    row.push(if row.is_empty() { '[' } else { ',' });
    row.push('[');
    row.push_str(&format!("{},{},", event.seq, event.time));
    text(row, &event.actor_label);
    text(row, &actor_json);
    text(row, &event.auth);
    text(row, &event.action);
    text(row, &event.target);
    text(row, event.outcome.as_str());
    match &event.reason {
        Some(reason) => text(row, reason),
        None => row.push_str("null,"),
    }
    text(row, &event.request_id);
    match &event.source {
        Some(source) => text(row, source),
        None => row.push_str("null,"),
    }
    text(row, &details_json);
    row.push('"');
    row.push_str(&String::from(HexHash(leaf)));
    row.push('"');
    match &w.mac {
        Some(key) => {
            row.push_str(",\"");
            row.push_str(&String::from(HexHash(key.mac(&leaf))));
            row.push_str("\"]");
        }
        None => row.push_str(",null]"),
    }
    w.pending += 1;
    Ok(())
}

async fn flush(
    mut tx: Transaction<'static, Any>,
    backend: Backend,
    rows: &str,
    pending: usize,
    certificates: &str,
    nodes: &[(NodeId, Hash)],
    (size, actions): (u64, &[&'static str]),
) -> Result<(), StoreError> {
    if pending == 0 {
        tx.commit().await?;
        return Ok(());
    }
    // Each table gets its batch as one JSON array parameter, expanded by the database: two
    // statements per batch instead of thirteen bound values per event.
    let rows = format!("{rows}]");
    let tree: Vec<serde_json::Value> = nodes
        .iter()
        .map(|(id, hash)| serde_json::json!([id.level, id.index, String::from(HexHash(*hash))]))
        .collect();
    let (insert_events, insert_nodes) = match backend {
        Backend::Sqlite => (SQLITE_EVENTS, SQLITE_NODES),
        Backend::Postgres => (POSTGRES_EVENTS, POSTGRES_NODES),
    };
    sqlx::query(insert_events)
        .bind(rows)
        .execute(&mut *tx)
        .await?;
    sqlx::query(insert_nodes)
        .bind(serde_json::Value::Array(tree).to_string())
        .execute(&mut *tx)
        .await?;
    if !certificates.is_empty() {
        // A repeated random serial (about one in 2^31 after 2^31 certificates) fails the whole
        // batch: nothing in it is committed or acknowledged, and callers may retry.
        let insert = match backend {
            Backend::Sqlite => SQLITE_CERTIFICATES,
            Backend::Postgres => POSTGRES_CERTIFICATES,
        };
        sqlx::query(insert)
            .bind(format!("{certificates}]"))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE audit_head SET size = $1 WHERE id = 1")
        .bind(to_i64(size))
        .execute(&mut *tx)
        .await?;
    if backend == Backend::Postgres {
        // Delivered to every listening process when (and only if) this commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::CHANGES_CHANNEL)
            .bind(change_payload(actions))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The actions of a batch as one NOTIFY payload: comma-separated, under PostgreSQL's 8000-byte
/// limit (a batch with more is told as `*`, "anything may have changed").
fn change_payload(actions: &[&str]) -> String {
    let text = actions.join(",");
    if text.len() < 7_900 {
        text
    } else {
        "*".to_owned()
    }
}

const SQLITE_EVENTS: &str = "INSERT INTO audit_log \
    (seq, time, actor, actor_json, auth, action, target, outcome, reason, request_id, source, details, leaf_hash, mac) \
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
    json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
    json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'), \
    json_extract(value, '$[9]'), json_extract(value, '$[10]'), json_extract(value, '$[11]'), \
    json_extract(value, '$[12]'), json_extract(value, '$[13]') FROM json_each($1)";

const SQLITE_NODES: &str = "INSERT INTO audit_nodes (level, idx, hash) \
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each($1)";

const POSTGRES_EVENTS: &str = "INSERT INTO audit_log \
    (seq, time, actor, actor_json, auth, action, target, outcome, reason, request_id, source, details, leaf_hash, mac) \
    SELECT (e->>0)::bigint, (e->>1)::bigint, e->>2, e->>3, e->>4, e->>5, e->>6, e->>7, e->>8, e->>9, e->>10, \
    e->>11, e->>12, e->>13 FROM jsonb_array_elements($1::jsonb) AS e";

const POSTGRES_NODES: &str = "INSERT INTO audit_nodes (level, idx, hash) \
    SELECT (n->>0)::bigint, (n->>1)::bigint, n->>2 FROM jsonb_array_elements($1::jsonb) AS n";

const SQLITE_CERTIFICATES: &str = "INSERT INTO ssh_certificates \
    (serial, ca_key_id, kind, key_id, principals, valid_after, valid_before, issued_at, \
    holder_user_id) \
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
    json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
    json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]') \
    FROM json_each($1)";

const POSTGRES_CERTIFICATES: &str = "INSERT INTO ssh_certificates \
    (serial, ca_key_id, kind, key_id, principals, valid_after, valid_before, issued_at, \
    holder_user_id) \
    SELECT (c->>0)::bigint, c->>1, c->>2, c->>3, c->>4, (c->>5)::bigint, (c->>6)::bigint, \
    (c->>7)::bigint, c->>8 \
    FROM jsonb_array_elements($1::jsonb) AS c";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a caller sends, what is kept fits the bound and starts as the text did.
        #[test]
        fn bounded_text_fits_and_keeps_its_start(text in "\\PC{0,400}", max in 4usize..300) {
            let out = bounded(text.clone(), max);
            prop_assert!(out.len() <= max);
            let kept = out.strip_suffix('…').unwrap_or(&out);
            prop_assert!(text.starts_with(kept));
            if text.len() <= max {
                prop_assert_eq!(out, text);
            }
        }
    }
}
