//! Warden's storage. With `warden-vuln-store`, which builds on it, the only crates that speak
//! SQL.
//!
//! One [`Store`] over SQLite (the embedded default, in WAL mode) or PostgreSQL (for many
//! replicas). Both run the same SQL through sqlx's `Any` driver, with one migration set per
//! backend under `migrations/`, so behaviour is the same on both; the store tests run every
//! case against each.
//!
//! Every mutation goes through [`Store::audited`]: the change and its audit event are written
//! in one transaction, and a change whose event cannot be written does not happen. Refused
//! requests are recorded with [`Store::record_denial`].
//!
//! # Threat model
//!
//! **What the crate trusts.**
//! - The database server and whoever holds its credentials: they can read and change any row.
//! - Its callers for who acts and when: the [`AuditContext`] (actor, request id, source, time)
//!   is written as given.
//! - The audit MAC key its caller hands the writer (opened under the KEK at start).
//!
//! **What an attacker controls.**
//! - Every value a caller passes on from outside. Names arrive as `warden-model` types; free
//!   text is bound as a parameter, never spliced into SQL; an audit event's target and reason
//!   are cut to 256 and 1,024 bytes.
//! - SCIM filters, parsed (by `warden-scim`) into a typed tree and compiled to SQL with bound
//!   parameters over a fixed table of filterable attributes.
//! - Page bounds (`after`, `before`), which are names bound as parameters; a page's size is
//!   capped by its caller.
//! - A reader of a backup or a replica, who finds token and session secrets only as SHA-256
//!   hashes, CA keys and the audit log's MAC and signing keys only sealed under the KEK, and
//!   the rest in the clear.
//!
//! **What it promises.**
//! - Only this crate and `warden-vuln-store` speak SQL, and only with bound parameters; the
//!   other one writes only through [`Store::audited`].
//! - A change and its audit event commit together or not at all, on SQLite and PostgreSQL
//!   alike; a writer is answered only after the commit that holds its change.
//! - The audit log is append-only and gapless: sequence numbers come from `audit_head` inside
//!   the writing transaction, each event carries a MAC from the MAC key's first sequence number,
//!   and the Merkle nodes are written with the leaf. Nothing updates the log's tables; the only
//!   delete is retention's, itself audited.
//! - Committed changes are announced after commit ([`Store::listen`]; LISTEN/NOTIFY on
//!   PostgreSQL), so every process sees what ended access.
//!
//! **What it does not promise.**
//! - Someone with write access to the database can change any table. Changes to the audit log
//!   are caught (MACs, signed checkpoints, the server's check at start and `warden audit
//!   verify`); changes to other tables are not, except where the audit log records what they
//!   should hold.
//! - Activity timestamps (a session's last use) and SSH proxies' leases are written without
//!   an audit event: they change no access.

mod access;
mod audit;
mod break_glass;
mod ca;
mod compliance;
mod error;
mod groups;
mod hosts;
mod location;
mod mesh;
mod page;
mod passkeys;
mod policy;
mod reviews;
mod scim_filter;
mod scim_groups;
mod scim_users;
mod signin;
mod ssh_sessions;
mod tokens;
mod users;
mod writer;

use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::Mutex;

pub use access::{AccessRequest, Decision, Grant, Leaver, NewAccessRequest, RequestState};
pub use audit::{AuditContext, EventFilter, StoredCheckpoint, TailEvent};
pub use break_glass::{BreakGlass, BreakGlassUse, NewBreakGlass, NewBreakGlassUse};
pub use ca::{CaKey, LiveSshCertificate, NewSshCertificate, NewX509Certificate};
pub use error::StoreError;
pub use groups::Group;
pub use hosts::{Host, HostHealth, JoinTokenCredential, NewJoinToken};
pub use location::{Backend, DatabaseLocation};
pub use mesh::{MeshMember, MeshNode, MeshNodeKind, NewMeshNode};
pub use page::{Page, PageRequest};
pub use passkeys::StoredPasskey;
pub use policy::{NewPolicyVersion, PolicyVersion};
pub use reviews::{AccessReview, NewAccessReview, ReviewItem, ReviewScope, ReviewerRule};
pub use scim_groups::{ScimGroup, ScimGroupChange};
pub use scim_users::{ScimList, ScimRef, ScimUser, ScimUserChange};
pub use signin::{IdpSignIn, NewSession, Session, SessionStage};
pub use ssh_sessions::{SessionFilter, SshSession};
pub use tokens::{ApiToken, NewToken, TokenCredential, TokenOwner};
pub use users::{NewUser, User};
pub use warden_audit::{AuditEvent, Outcome};
pub use writer::{MAX_REASON_BYTES, MAX_TARGET_BYTES};

/// The audited write path's parts, for the store crates built on this one
/// (`warden-vuln-store`): what a change is named and records, and new row ids. A change made
/// with them goes through [`Store::audited`] like every change here.
pub mod write {
    pub use crate::audit::{Action, Name};
    pub use crate::users::new_id;
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A connection pool to Warden's database.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    location: DatabaseLocation,
    /// The one write path's batch (see `writer.rs`).
    writer: Mutex<writer::Writer>,
    /// Wakes writers waiting for a batch's commit to end.
    commit_done: tokio::sync::Notify,
    /// Committed batches' action names, for [`Store::subscribe`].
    changes: tokio::sync::broadcast::Sender<Changes>,
}

/// The action names (`user.disable`, `policy.apply`, …) of one committed batch of changes;
/// `*` when any may have changed (a batch too large to list, a listener reconnecting).
pub type Changes = std::sync::Arc<Vec<String>>;

/// The PostgreSQL NOTIFY channel committed changes are told on.
const CHANGES_CHANNEL: &str = "warden_changes";

/// A value that holds the store, and lends it only to code that may speak to it.
///
/// Only a crate that depends on `warden-store` can name this trait, and so call
/// [`HoldsStore::store`]. The web pages hold the control plane's state (`App`) but do not
/// depend on this crate, so they cannot reach the database through it: they go through the
/// API. The layering test keeps `warden-store` out of their dependencies; the compiler does
/// the rest.
pub trait HoldsStore {
    /// The store.
    fn store(&self) -> &std::sync::Arc<Store>;
}

/// Connection pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool will open.
    pub max: u32,
}

impl Store {
    /// Connects to the database. Does not migrate: call [`Store::migrate`].
    pub async fn open(location: &DatabaseLocation) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = location.connect_url();
        let options: AnyConnectOptions =
            url.parse().map_err(|e: sqlx::Error| StoreError::Connect {
                url: location.to_string(),
                cause: e.to_string(),
            })?;
        let backend = location.backend();
        let max = match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        // One direct connection first: the pool retries until its timeout and then reports
        // only that it timed out, while this reports the real cause at once.
        let probe =
            AnyConnection::connect_with(&options)
                .await
                .map_err(|e| StoreError::Connect {
                    url: location.to_string(),
                    cause: cause(&e),
                })?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| Box::pin(async move { prepare(conn, backend).await }))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Connect {
                url: location.to_string(),
                cause: cause(&e),
            })?;

        Ok(Store {
            pool,
            location: location.clone(),
            writer: Mutex::default(),
            commit_done: tokio::sync::Notify::new(),
            changes: tokio::sync::broadcast::channel(1024).0,
        })
    }

    /// Every committed batch's actions, from this process at once and, on PostgreSQL while
    /// [`Store::listen`] runs, from every other Warden process on the database.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Changes> {
        self.changes.subscribe()
    }

    /// On PostgreSQL, relays other processes' commits (LISTEN) to [`Store::subscribe`]rs until
    /// the task is dropped, reconnecting after a lost connection and then telling `*` (what
    /// happened meanwhile is unknown). On SQLite there is no other process: it returns.
    pub async fn listen(self: std::sync::Arc<Self>) {
        if self.location.backend() != Backend::Postgres {
            return;
        }
        let url = self.location.connect_url();
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(CHANGES_CHANNEL).await {
                    Ok(()) => {
                        let _ = self.changes.send(std::sync::Arc::new(vec!["*".to_owned()]));
                        // `try_recv` says `None` when the connection was lost (and remade).
                        while let Ok(Some(n)) = listener.try_recv().await {
                            let actions = n.payload().split(',').map(str::to_owned).collect();
                            let _ = self.changes.send(std::sync::Arc::new(actions));
                        }
                        tracing::warn!("the change listener lost its connection; listening again");
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for changes"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot connect the change listener"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Applies every migration the database has not seen yet, then, on PostgreSQL, the index
    /// that needs an extension ([`Store::trigram_index`]).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.location.backend() {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        if self.location.backend() == Backend::Postgres
            && let Err(cause) = self.trigram_index().await
        {
            tracing::warn!(
                cause = %cause,
                "no trigram index on the findings' texts: a text search reads every distinct \
                 text (same answers, slower); let the database user create the pg_trgm \
                 extension (PostgreSQL's contrib) and restart"
            );
        }
        Ok(())
    }

    /// Whether the findings' distinct texts have their trigram index: on PostgreSQL, so a
    /// search for a rare text reads the few texts holding it, not all of them. SQLite has none.
    pub async fn has_trigram_index(&self) -> Result<bool, StoreError> {
        if self.location.backend() != Backend::Postgres {
            return Ok(false);
        }
        let found = sqlx::query(
            "SELECT 1 AS one FROM pg_indexes \
             WHERE schemaname = current_schema() AND indexname = 'vuln_texts_trigrams'",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Makes the trigram index on the findings' distinct texts if it is missing. It needs the
    /// `pg_trgm` extension, which PostgreSQL ships in its contrib and lets a database's owner
    /// create; it is not a migration so that a database without it still migrates, and each
    /// start tries again. Processes starting together take turns (an advisory lock).
    async fn trigram_index(&self) -> Result<(), StoreError> {
        if self.has_trigram_index().await? {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 AS one FROM (SELECT pg_advisory_xact_lock(7000000033)) locked")
            .execute(&mut *tx)
            .await?;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS vuln_texts_trigrams ON vuln_texts USING gin (text gin_trgm_ops)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Checks the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Where this store lives, with any password removed.
    pub fn location(&self) -> &DatabaseLocation {
        &self.location
    }

    /// The connection pool, for the store crates' reads. Changes go through
    /// [`Store::audited`].
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Pool occupancy.
    pub fn pool_stats(&self) -> PoolStats {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        PoolStats {
            size,
            idle,
            max: self.pool.options().get_max_connections(),
        }
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn prepare(conn: &mut AnyConnection, backend: Backend) -> Result<(), sqlx::Error> {
    if backend == Backend::Sqlite {
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
             PRAGMA cache_size = -16000;",
        )
        .await?;
    }
    Ok(())
}

/// How many ids one `IN (…)` list or multi-row insert binds.
const CHUNK: usize = 500;

/// `$from, $from+1, …`: `n` bind marks for an `IN (…)` list.
fn marks(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the rows of `ids` at most [`CHUNK`] at a time: `sql(n)` is the statement for `n`
/// ids, bound as `$1` to `$n`, and `each` takes every row it answers.
async fn rows_for_ids<I: AsRef<str>>(
    conn: &mut AnyConnection,
    ids: &[I],
    sql: impl Fn(usize) -> String,
    mut each: impl FnMut(&AnyRow) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(CHUNK) {
        let sql = sql(chunk.len());
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.as_ref());
        }
        for row in query.fetch_all(&mut *conn).await? {
            each(&row)?;
        }
    }
    Ok(())
}

/// The innermost useful message of a connection error, on one line.
fn cause(e: &sqlx::Error) -> String {
    let text = match e {
        sqlx::Error::Io(io) => {
            let text = io.to_string();
            // "Connection refused (os error 111)" reads better without the errno.
            text.split(" (os error")
                .next()
                .unwrap_or_default()
                .to_owned()
        }
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_owned(),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or_default().to_owned()
}
