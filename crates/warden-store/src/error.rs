/// Why a store operation failed.
///
/// The first variants are the caller's mistakes and safe to show; [`StoreError::Database`]
/// and [`StoreError::Corrupt`] are ours, and the edge shows them only as an opaque error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{kind} `{name}` not found")]
    NotFound {
        /// What kind of thing.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A unique name is taken.
    #[error("{kind} `{name}` already exists")]
    AlreadyExists {
        /// What kind of thing.
        kind: &'static str,
        /// The name in use.
        name: String,
    },
    /// The change makes no sense in the current state (revoking a revoked token).
    #[error("{0}")]
    Conflict(String),
    /// The thing changed since the caller read it, and the change was made against what it
    /// read: read it again, then decide.
    #[error("{0}")]
    Stale(String),
    /// The database could not be reached at start.
    #[error("cannot connect to the database at {url}: {cause}")]
    Connect {
        /// The URL without its password.
        url: String,
        /// What went wrong.
        cause: String,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(String),
    /// A row holds a value Warden would never have written.
    #[error("database holds an invalid value: {0}")]
    Corrupt(String),
    /// The batch holding this change could not be committed: nothing of it happened.
    #[error("the change was not committed: {0}")]
    Commit(String),
    /// A SCIM request the client must fix, in the RFC's terms.
    #[error("{0}")]
    Scim(#[from] warden_scim::ScimError),
    /// Another writer changed the row between a read and a compare-and-swap write: read again.
    #[error("the row changed while being written")]
    Raced,
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// True when the error is the caller's to fix and its message is safe to show them.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::NotFound { .. }
                | Self::AlreadyExists { .. }
                | Self::Conflict(_)
                | Self::Stale(_)
                | Self::Scim(_)
        )
    }

    pub(crate) fn unique(e: sqlx::Error, kind: &'static str, name: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::AlreadyExists {
                kind,
                name: name.to_owned(),
            },
            _ => StoreError::Database(e),
        }
    }
}
