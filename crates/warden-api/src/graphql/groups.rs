//! A page of groups asks each group for its members, member count and owner. The groups one
//! answer lists share a [`GroupPage`], which reads each of those fields for every group of the
//! page in one query, the first time any group asks: one query per field, not one per group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;
use warden_model::UserName;
use warden_store::{Store, StoreError};

/// Each group's first members, by group id, read once for the page.
type Members = Arc<OnceCell<BTreeMap<String, Vec<UserName>>>>;

/// The groups of one answer, and what has been read for all of them.
#[derive(Debug)]
pub struct GroupPage {
    store: Arc<Store>,
    ids: Vec<String>,
    counts: OnceCell<BTreeMap<String, i64>>,
    owners: OnceCell<BTreeMap<String, UserName>>,
    /// By the `first` asked: an answer may ask `members` more than once, with aliases.
    members: Mutex<BTreeMap<Option<u32>, Members>>,
}

impl GroupPage {
    /// The page of groups `ids`.
    pub fn new(store: Arc<Store>, ids: Vec<String>) -> Arc<Self> {
        Arc::new(GroupPage {
            store,
            ids,
            counts: OnceCell::new(),
            owners: OnceCell::new(),
            members: Mutex::new(BTreeMap::new()),
        })
    }

    /// Group `id`'s member count.
    pub async fn member_count(&self, id: &str) -> Result<i64, StoreError> {
        let counts = self
            .counts
            .get_or_try_init(|| self.store.groups_member_counts(&self.ids))
            .await?;
        Ok(counts.get(id).copied().unwrap_or(0))
    }

    /// Group `id`'s owner.
    pub async fn owner(&self, id: &str) -> Result<Option<UserName>, StoreError> {
        let owners = self
            .owners
            .get_or_try_init(|| self.store.groups_owners(&self.ids))
            .await?;
        Ok(owners.get(id).cloned())
    }

    /// Group `id`'s first `first` members (all with `None`).
    pub async fn members(&self, id: &str, first: Option<u32>) -> Result<Vec<UserName>, StoreError> {
        let cell = self
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(first)
            .or_default()
            .clone();
        let members = cell
            .get_or_try_init(|| self.store.groups_members(&self.ids, first))
            .await?;
        Ok(members.get(id).cloned().unwrap_or_default())
    }
}
