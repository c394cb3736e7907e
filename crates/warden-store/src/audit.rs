//! The audit trail's write path and reads. Every change, failed change and denial becomes a
//! leaf of the Merkle log in the transaction that makes the change: the sequence number comes
//! from `audit_head` (locked by the update), the frontier from `audit_nodes`, and the nodes the
//! new leaf completes are written beside it.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use warden_audit::{AuditEvent, Frontier, Hash, HexHash, NodeId, Outcome, frontier_ids};
use warden_model::{Actor, Change, Timestamp};

use crate::writer::Entry;
use crate::{Store, StoreError};

/// Who asks for a change, when, and through which request. Built at the edge, per request.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// Who is acting.
    pub actor: Actor,
    /// The request id that log lines of the same request carry.
    pub request_id: String,
    /// The remote address, when there is one (not for the admin socket).
    pub source: Option<String>,
    /// The time the request arrived.
    pub now: Timestamp,
}

/// What an event is named: a change to Warden's state, which the processes that follow
/// commits may need to see, or a record of something that changed nothing (a denial, a
/// sensitive read), which they never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// A change: told to the processes that follow commits.
    Change(Change),
    /// A record of something that changed nothing.
    Record(&'static str),
}

impl Name {
    /// The event's action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Name::Change(change) => change.as_str(),
            Name::Record(name) => name,
        }
    }
}

impl From<Change> for Name {
    fn from(change: Change) -> Name {
        Name::Change(change)
    }
}

/// What a mutation is, for its audit event.
#[derive(Debug, Clone)]
pub struct Action {
    /// The event's name.
    pub name: Name,
    /// What it acts on (`user:alice`, `finding:12`).
    pub target: String,
    /// What the event records beside.
    pub details: Value,
}

/// Which events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Actor label, exactly (`user:alice`).
    pub actor: Option<String>,
    /// Action, exactly (`user.create`).
    pub action: Option<String>,
    /// Target, exactly (`user:alice`).
    pub target: Option<String>,
    /// At or after this time.
    pub since: Option<Timestamp>,
    /// Before this time.
    pub until: Option<Timestamp>,
    /// Sequence numbers greater than this.
    pub after_seq: Option<u64>,
    /// Sequence numbers less than this.
    pub before_seq: Option<u64>,
    /// Outcome, exactly (`success`, `failure`, `denied`).
    pub outcome: Option<String>,
    /// Newest first (the page is then the newest events matching).
    pub newest_first: bool,
}

/// A stored, signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// When it was signed.
    pub time: Timestamp,
    /// The signed note.
    pub note: String,
}

/// A stored event as the start-up check reads it.
#[derive(Debug, Clone)]
pub struct TailEvent {
    /// The event as stored.
    pub event: AuditEvent,
    /// The leaf hash stored beside it.
    pub leaf: Hash,
    /// Its MAC, if it has one.
    pub mac: Option<Hash>,
}

const EVENT_COLUMNS: &str = "seq, time, actor, actor_json, auth, action, target, outcome, reason, request_id, source, details, leaf_hash";

fn unhex(s: String) -> Result<Hash, StoreError> {
    HexHash::try_from(s)
        .map(|h| h.0)
        .map_err(|e| StoreError::Corrupt(format!("hash: {e}")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what}")))
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn event_from_row(row: &AnyRow) -> Result<(AuditEvent, Hash), StoreError> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("audit {what}: {e}"));
    let actor: String = row.try_get("actor_json")?;
    let details: String = row.try_get("details")?;
    let outcome: String = row.try_get("outcome")?;
    let event = AuditEvent {
        seq: to_u64(row.try_get("seq")?, "seq")?,
        time: row.try_get("time")?,
        actor: serde_json::from_str(&actor).map_err(|e| corrupt("actor", &e))?,
        actor_label: row.try_get("actor")?,
        auth: row.try_get("auth")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
        reason: row.try_get("reason")?,
        request_id: row.try_get("request_id")?,
        source: row.try_get("source")?,
        details: serde_json::from_str(&details).map_err(|e| corrupt("details", &e))?,
    };
    Ok((event, unhex(row.try_get("leaf_hash")?)?))
}

impl Store {
    /// The one path for every mutation: runs `change` in a transaction, appends its audit event
    /// in the same transaction, and commits both or neither. A change refused for the caller's
    /// mistake is rolled back and recorded as a failure in a transaction of its own.
    pub async fn audited<T>(
        &self,
        ctx: &AuditContext,
        action: Action,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write(Entry::change(ctx, action), change).await
    }

    /// As [`Store::audited`], for a change that learns details of its own (what it counted
    /// as it went): they are merged into the event's details.
    pub async fn audited_detailed<T>(
        &self,
        ctx: &AuditContext,
        action: Action,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<(T, Value), StoreError>,
    ) -> Result<T, StoreError> {
        let learned = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
        let entry = Entry {
            learned: Some(learned.clone()),
            ..Entry::change(ctx, action)
        };
        self.write(entry, async |conn| {
            let (value, details) = change(conn).await?;
            if let Ok(mut slot) = learned.lock() {
                *slot = details;
            }
            Ok(value)
        })
        .await
    }

    /// As [`Store::audited`], for a change every replica's timers try and one makes first:
    /// `change` returns how many rows it touched, and none means another made it already, so
    /// nothing is written or recorded. Whether this call made it.
    pub(crate) async fn audited_first(
        &self,
        ctx: &AuditContext,
        action: Action,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<u64, StoreError>,
    ) -> Result<bool, StoreError> {
        let made = self
            .audited(ctx, action, async move |conn| {
                if change(conn).await? == 0 {
                    return Err(StoreError::Raced);
                }
                Ok(())
            })
            .await;
        match made {
            Ok(()) => Ok(true),
            Err(StoreError::Raced) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes an `ssh_certificates` row (a JSON array in column order) and its audit event in
    /// the current batch, after `change` (which must not touch the database) succeeds. The row
    /// joins the batch's bulk insert: no statement per certificate.
    pub(crate) async fn audited_certificate<T>(
        &self,
        ctx: &AuditContext,
        action: Action,
        row: String,
        change: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let entry = Entry {
            certificate: Some(row),
            ..Entry::record(ctx, action, Outcome::Success, None)
        };
        self.write(entry, change).await
    }

    /// Records that `ctx.actor` was refused `action` on `target`.
    pub async fn record_denial(
        &self,
        ctx: &AuditContext,
        action: &'static str,
        target: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.record(
            ctx,
            action,
            target,
            Value::Null,
            Outcome::Denied,
            Some(reason),
        )
        .await
    }

    /// Records an event that changes nothing in Warden's state: a denial, or a read of
    /// sensitive data (`audit.export`).
    pub async fn record(
        &self,
        ctx: &AuditContext,
        action: &'static str,
        target: &str,
        details: Value,
        outcome: Outcome,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Name::Record(action),
            target: target.to_owned(),
            details,
        };
        let entry = Entry::record(ctx, action, outcome, reason.map(str::to_owned));
        self.write(entry, async |_| Ok(())).await
    }

    /// The most recent `limit` events, oldest first.
    pub async fn recent_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1");
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut events = rows
            .iter()
            .map(|r| event_from_row(r).map(|(e, _)| e))
            .collect::<Result<Vec<_>, _>>()?;
        events.reverse();
        Ok(events)
    }

    /// Events matching `filter`, in sequence order, at most `limit`.
    pub async fn events(
        &self,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut clauses = Vec::new();
        let mut texts = Vec::new();
        let mut numbers = Vec::new();
        for (column, value) in [
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("target", &filter.target),
            ("outcome", &filter.outcome),
        ] {
            if let Some(v) = value {
                texts.push(v.clone());
                clauses.push(format!("{column} = $T{}", texts.len()));
            }
        }
        for (cond, value) in [
            ("time >= ", filter.since.map(Timestamp::as_millis)),
            ("time < ", filter.until.map(Timestamp::as_millis)),
            ("seq > ", filter.after_seq.map(to_i64)),
            ("seq < ", filter.before_seq.map(to_i64)),
        ] {
            if let Some(v) = value {
                numbers.push(v);
                clauses.push(format!("{cond}$N{}", numbers.len()));
            }
        }
        // Number the placeholders in order of appearance: texts first, then numbers, then limit.
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM audit_log");
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(if filter.newest_first {
            " ORDER BY seq DESC LIMIT $L"
        } else {
            " ORDER BY seq LIMIT $L"
        });
        for i in 1..=texts.len() {
            sql = sql.replacen(&format!("$T{i}"), &format!("${i}"), 1);
        }
        for i in 1..=numbers.len() {
            sql = sql.replacen(&format!("$N{i}"), &format!("${}", texts.len() + i), 1);
        }
        sql = sql.replacen("$L", &format!("${}", texts.len() + numbers.len() + 1), 1);
        let mut query = sqlx::query(&sql);
        for t in texts {
            query = query.bind(t);
        }
        for n in numbers {
            query = query.bind(n);
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| event_from_row(r).map(|(e, _)| e))
            .collect()
    }

    /// Events `from..=to` with their recorded leaf hashes, in order.
    pub async fn event_range(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<(AuditEvent, Hash)>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_log WHERE seq >= $1 AND seq <= $2 ORDER BY seq"
        );
        let rows = sqlx::query(&sql)
            .bind(to_i64(from))
            .bind(to_i64(to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The first event at or after `time`, if any.
    pub async fn first_seq_at_or_after(&self, time: Timestamp) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT MIN(seq) AS seq FROM audit_log WHERE time >= $1")
            .bind(time.as_millis())
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<Option<i64>, _>("seq")?
            .map(|s| to_u64(s, "seq"))
            .transpose()
    }

    /// The oldest event still in the database (older ones were archived); `None` when empty.
    pub async fn audit_first_seq(&self) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT MIN(seq) AS seq FROM audit_log")
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<Option<i64>, _>("seq")?
            .map(|s| to_u64(s, "seq"))
            .transpose()
    }

    /// The newest event from before `time`.
    pub async fn last_seq_before(&self, time: Timestamp) -> Result<Option<u64>, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM audit_log WHERE time < $1")
            .bind(time.as_millis())
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<Option<i64>, _>("seq")?
            .map(|s| to_u64(s, "seq"))
            .transpose()
    }

    /// Removes events `first..=last` from the database once they are safely in an archive
    /// file, recording that (with the file's name and SHA-256) in the same transaction. The
    /// tree's nodes stay, so proofs and later exports still chain to the signed checkpoints.
    pub async fn archive_range(
        &self,
        ctx: &AuditContext,
        first: u64,
        last: u64,
        file: &str,
        sha256: &str,
    ) -> Result<u64, StoreError> {
        let action = Action {
            name: Change::AuditArchive.into(),
            target: "audit".to_owned(),
            details: serde_json::json!({ "first_seq": first, "last_seq": last, "file": file, "sha256": sha256 }),
        };
        self.audited(ctx, action, async |conn| {
            let done = sqlx::query("DELETE FROM audit_log WHERE seq >= $1 AND seq <= $2")
                .bind(to_i64(first))
                .bind(to_i64(last))
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// How far the sink `name` has delivered the log (0: nothing yet).
    pub async fn sink_cursor(&self, name: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT seq FROM audit_sink_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => to_u64(row.try_get("seq")?, "sink cursor"),
            None => Ok(0),
        }
    }

    /// Records that the sink `name` has delivered every event up to `seq`. This is delivery
    /// bookkeeping, not a change to Warden's state, so it is not itself audited (it would feed
    /// the log with events about the log).
    pub async fn set_sink_cursor(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_sink_cursors (name, seq) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
        )
        .bind(name)
        .bind(to_i64(seq))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Events in the log.
    pub async fn audit_size(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT size FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        to_u64(row.try_get("size")?, "size")
    }

    /// Stored tree nodes by id; absent ids are left out.
    pub async fn audit_nodes(&self, ids: &[NodeId]) -> Result<Vec<(NodeId, Hash)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        nodes(&mut conn, ids).await
    }

    /// The frontier of the tree at `size` (which must not exceed the log).
    pub async fn audit_frontier(&self, size: u64) -> Result<Frontier, StoreError> {
        let mut conn = self.pool.acquire().await?;
        load_frontier(&mut conn, size).await
    }

    /// Makes the writer MAC every event it appends from now on with `key`.
    pub async fn use_audit_mac(&self, key: warden_audit::MacKey) {
        self.writer.lock().await.mac = Some(key);
    }

    /// Whether any stored event carries a MAC (a MAC key was in use).
    pub async fn audit_has_macs(&self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM audit_log WHERE mac IS NOT NULL LIMIT 1")
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// The sealed audit MAC key and the first event it covers, if one was made.
    pub async fn audit_mac_key(&self) -> Result<Option<(String, u64)>, StoreError> {
        let row = sqlx::query(
            "SELECT sealed_key, from_seq FROM audit_mac_keys ORDER BY created_at, id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                r.try_get("sealed_key")?,
                to_u64(r.try_get("from_seq")?, "from_seq")?,
            ))
        })
        .transpose()
    }

    /// Keeps the sealed audit MAC key, covering events from `from_seq` on, unless another
    /// server kept one first; returns the one kept. Not an audited change: the key is the
    /// audit log's own machinery, made before anything may be written to it (the MACs of every
    /// event after it are its record).
    pub async fn insert_audit_mac_key(
        &self,
        sealed: &str,
        from_seq: u64,
    ) -> Result<(String, u64), StoreError> {
        let now = Timestamp::from_system(std::time::SystemTime::now());
        sqlx::query(
            "INSERT INTO audit_mac_keys (id, sealed_key, from_seq, created_at) VALUES ('audit-mac', $1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(sealed)
        .bind(to_i64(from_seq))
        .bind(now.as_millis())
        .execute(&self.pool)
        .await?;
        self.audit_mac_key()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the audit MAC key vanished".to_owned()))
    }

    /// The log's checkpoint signing key: its name and its seed sealed under the KEK, if one
    /// was kept.
    pub async fn audit_signing_key(&self) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT name, sealed FROM audit_signing_key WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("name")?, r.try_get("sealed")?)))
            .transpose()
    }

    /// Keeps the log's signing key (`name`, its sealed seed), unless another server kept one
    /// first; returns the one kept. Not an audited change, like the MAC key: it is the log's
    /// own machinery, and every checkpoint it signs is its record.
    pub async fn insert_audit_signing_key(
        &self,
        name: &str,
        sealed: &str,
    ) -> Result<(String, String), StoreError> {
        let now = Timestamp::from_system(std::time::SystemTime::now());
        sqlx::query(
            "INSERT INTO audit_signing_key (id, name, sealed, created_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .bind(now.as_millis())
        .execute(&self.pool)
        .await?;
        self.audit_signing_key()
            .await?
            .ok_or_else(|| StoreError::Corrupt("the audit signing key vanished".to_owned()))
    }

    /// Takes or renews the signer's lease for `holder` until `until`, when nobody holds it,
    /// `holder` does, or its holder's lease ran out before `now`; whether `holder` holds it.
    /// One replica signs at a time; when it dies, another takes over once its lease runs out.
    pub async fn take_audit_signer(
        &self,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "INSERT INTO audit_signer (id, holder, lease_until) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
             WHERE audit_signer.holder = excluded.holder OR audit_signer.lease_until < $3",
        )
        .bind(holder)
        .bind(until.as_millis())
        .bind(now.as_millis())
        .execute(&self.pool)
        .await?;
        let held: Option<String> =
            sqlx::query_scalar("SELECT holder FROM audit_signer WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(held.as_deref() == Some(holder))
    }

    /// The stored events after `after` up to `through`, in order, with their stored leaf hashes
    /// and MACs: what a server checks at start before it signs over them (rows other servers
    /// append meanwhile are theirs to check).
    pub async fn audit_tail(&self, after: u64, through: u64) -> Result<Vec<TailEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, mac FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq"
        );
        let rows = sqlx::query(&sql)
            .bind(to_i64(after))
            .bind(to_i64(through))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let (event, leaf) = event_from_row(row)?;
                let mac = row
                    .try_get::<Option<String>, _>("mac")?
                    .map(unhex)
                    .transpose()?;
                Ok(TailEvent { event, leaf, mac })
            })
            .collect()
    }

    /// Stores a signed checkpoint; a second one for the same size is ignored.
    pub async fn insert_checkpoint(
        &self,
        size: u64,
        time: Timestamp,
        note: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO audit_checkpoints (size, time, note) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(to_i64(size))
            .bind(time.as_millis())
            .bind(note)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let rows = self
            .checkpoints_query("ORDER BY size DESC LIMIT 1", &[])
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Checkpoints with `from <= size <= to`, smallest first.
    pub async fn checkpoints_between(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.checkpoints_query(
            "WHERE size >= $1 AND size <= $2 ORDER BY size",
            &[to_i64(from), to_i64(to)],
        )
        .await
    }

    /// The smallest checkpoint with `size >= at_least`.
    pub async fn checkpoint_at_or_after(
        &self,
        at_least: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let rows = self
            .checkpoints_query(
                "WHERE size >= $1 ORDER BY size LIMIT 1",
                &[to_i64(at_least)],
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    async fn checkpoints_query(
        &self,
        rest: &str,
        binds: &[i64],
    ) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let sql = format!("SELECT size, time, note FROM audit_checkpoints {rest}");
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(StoredCheckpoint {
                    size: to_u64(r.try_get("size")?, "size")?,
                    time: Timestamp::from_millis(r.try_get("time")?),
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }
}

async fn nodes(
    conn: &mut AnyConnection,
    ids: &[NodeId],
) -> Result<Vec<(NodeId, Hash)>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let clauses: Vec<String> = (0..ids.len())
        .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    let sql = format!(
        "SELECT level, idx, hash FROM audit_nodes WHERE {}",
        clauses.join(" OR ")
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(i64::from(id.level)).bind(to_i64(id.index));
    }
    let rows = query.fetch_all(&mut *conn).await?;
    rows.into_iter()
        .map(|r| {
            let level = u32::try_from(r.try_get::<i64, _>("level")?)
                .map_err(|_| StoreError::Corrupt("tree level".into()))?;
            let index = to_u64(r.try_get("idx")?, "tree index")?;
            Ok((NodeId { level, index }, unhex(r.try_get("hash")?)?))
        })
        .collect()
}

pub(crate) async fn load_frontier(
    conn: &mut AnyConnection,
    size: u64,
) -> Result<Frontier, StoreError> {
    let ids = frontier_ids(size);
    let found = nodes(conn, &ids).await?;
    let mut hashes = Vec::with_capacity(ids.len());
    for id in &ids {
        let hash = found
            .iter()
            .find(|(f, _)| f == id)
            .map(|(_, h)| *h)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("tree node {}/{} is missing", id.level, id.index))
            })?;
        hashes.push(hash);
    }
    Frontier::from_nodes(size, hashes).ok_or_else(|| StoreError::Corrupt("tree frontier".into()))
}
