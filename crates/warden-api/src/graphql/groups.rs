//! A page of groups asks for each group's members, member count and owner; the loaders here
//! answer every group of the page with one query per field, not one per group.

#![expect(
    clippy::disallowed_types,
    reason = "async-graphql's Loader answers with a HashMap; each value is looked up by key, so \
              its order never reaches output"
)]

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use warden_model::UserName;
use warden_store::{Store, StoreError};

/// The batching loaders of one request: made afresh for each, so nothing one caller read is
/// kept for another.
pub type GroupLoader = DataLoader<Groups>;

/// Reads groups' members, counts and owners in batches.
pub struct Groups(pub Arc<Store>);

impl Groups {
    /// The loader for one request.
    pub fn loader(store: Arc<Store>) -> GroupLoader {
        DataLoader::new(Groups(store), tokio::spawn)
    }
}

/// A group's member count, by group id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberCount(pub String);

/// A group's owner, by group id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(pub String);

/// A group's first `first` members (all with `None`), by group id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Members {
    pub group_id: String,
    pub first: Option<u32>,
}

impl Loader<MemberCount> for Groups {
    type Value = i64;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[MemberCount]) -> Result<HashMap<MemberCount, i64>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let counts = self.0.groups_member_counts(&ids).await?;
        Ok(keys
            .iter()
            .map(|k| (k.clone(), counts.get(&k.0).copied().unwrap_or(0)))
            .collect())
    }
}

impl Loader<Owner> for Groups {
    type Value = UserName;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[Owner]) -> Result<HashMap<Owner, UserName>, Self::Error> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let mut owners = self.0.groups_owners(&ids).await?;
        Ok(keys
            .iter()
            .filter_map(|k| Some((k.clone(), owners.remove(&k.0)?)))
            .collect())
    }
}

impl Loader<Members> for Groups {
    type Value = Vec<UserName>;
    type Error = Arc<StoreError>;

    async fn load(&self, keys: &[Members]) -> Result<HashMap<Members, Vec<UserName>>, Self::Error> {
        // One query for each `first` asked (a page asks one).
        let mut by_first: std::collections::BTreeMap<Option<u32>, Vec<String>> =
            std::collections::BTreeMap::new();
        for k in keys {
            by_first
                .entry(k.first)
                .or_default()
                .push(k.group_id.clone());
        }
        let mut out = HashMap::with_capacity(keys.len());
        for (first, ids) in by_first {
            let mut members = self.0.groups_members(&ids, first).await?;
            for group_id in ids {
                let names = members.remove(&group_id).unwrap_or_default();
                out.insert(Members { group_id, first }, names);
            }
        }
        Ok(out)
    }
}
