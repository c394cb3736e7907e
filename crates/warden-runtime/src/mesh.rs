//! The mesh in the server: the compiled netmap, kept current from the store and the policy
//! in force.
//!
//! Every committed change (and a one-second tick, for key expiry and other replicas) makes the
//! compiler read the nodes again; a node that differs is changed in the netmap alone, and a new
//! policy version recompiles everything. The nodes whose maps changed get a new version, and
//! their long-polls (`GET …/map?after=N`) answer at once; the others keep waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, watch};
use warden_mesh::{MeshRanges, Netmap, Node, NodeKind, NodeMap, connect_rules};
use warden_model::Timestamp;
use warden_store::{MeshMember, MeshNodeKind, Store, StoreError};

use crate::config::MeshConfig;

/// How long a map request waits for a change before answering with the same version.
const LONG_POLL: Duration = Duration::from_secs(25);

/// The compiled mesh of one server.
pub struct Mesh {
    config: MeshConfig,
    state: RwLock<Compiled>,
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Compiled {
    netmap: Netmap,
    /// The generation at which each node's map last changed.
    versions: BTreeMap<String, u64>,
    /// The policy version compiled, once compiled.
    policy: Option<Option<i64>>,
    generation: u64,
}

/// A node's map with its version, as agents receive it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeshMap {
    /// Changes whenever the map does; send it back as `after`.
    pub version: u64,
    /// The map.
    pub map: NodeMap,
}

impl Mesh {
    /// An empty mesh, compiled by [`Mesh::run`].
    pub fn new(config: MeshConfig) -> Arc<Mesh> {
        Arc::new(Mesh {
            config,
            state: RwLock::new(Compiled::default()),
            generation: watch::channel(0).0,
        })
    }

    /// The mesh's configuration.
    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    /// The mesh's address ranges.
    pub fn ranges(&self) -> &MeshRanges {
        &self.config.ranges
    }

    /// Keeps the netmap current until the task is dropped.
    pub async fn run(self: Arc<Self>, store: Arc<Store>, policy: Arc<crate::policy::Engine>) {
        let mut changes = store.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                changed = changes.recv() => match changed {
                    Ok(actions) if !actions.iter().any(|a| warden_model::changes::changes_mesh(a)) => continue,
                    _ => {}
                },
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh(&store, &policy).await {
                tracing::error!(error = %e, "mesh refresh failed");
            }
        }
    }

    /// Reads the nodes and the policy again and changes what differs.
    pub async fn refresh(
        &self,
        store: &Store,
        policy: &crate::policy::Engine,
    ) -> Result<(), StoreError> {
        let now = Timestamp::from_system(SystemTime::now());
        let members = store.mesh_members(now).await?;
        let nodes: Vec<Node> = members.iter().filter_map(|m| self.node_of(m)).collect();
        let active = policy.active();
        let mut state = self.state.write().await;
        let mut touched: BTreeSet<String> = BTreeSet::new();
        if state.policy != Some(active.version) {
            let rules = active
                .policies
                .policies_json()
                .map_err(|e| e.to_string())
                .and_then(|json| connect_rules(&json).map_err(|e| e.to_string()));
            let rules = rules.unwrap_or_else(|reason| {
                tracing::error!(%reason, "the policy in force has connect policies the mesh cannot compile: nothing is allowed");
                Vec::new()
            });
            touched.extend(state.netmap.names().cloned());
            state.netmap = Netmap::new(rules, nodes);
            touched.extend(state.netmap.names().cloned());
            state.policy = Some(active.version);
        } else {
            let live: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            let gone: Vec<String> = state
                .netmap
                .names()
                .filter(|n| !live.contains(n.as_str()))
                .cloned()
                .collect();
            for name in gone {
                touched.extend(state.netmap.remove(&name));
            }
            for node in nodes {
                touched.extend(state.netmap.upsert(node));
            }
        }
        if !touched.is_empty() {
            state.generation += 1;
            let generation = state.generation;
            for name in touched {
                state.versions.insert(name, generation);
            }
            self.generation.send_replace(generation);
        }
        Ok(())
    }

    fn node_of(&self, m: &MeshMember) -> Option<Node> {
        if !m.live {
            return None;
        }
        let (ipv4, ipv6) = self.config.ranges.addresses(m.node.address_offset)?;
        Some(Node {
            name: m.node.name.clone(),
            kind: match m.node.kind {
                MeshNodeKind::Host => NodeKind::Host {
                    labels: m.labels.clone(),
                },
                MeshNodeKind::Device => NodeKind::Device {
                    owner: m.node.owner.clone(),
                    groups: m.groups.clone(),
                },
            },
            key: m.node.public_key.parse().ok()?,
            ipv4,
            ipv6,
            endpoint: m.node.endpoint.as_deref().and_then(|e| e.parse().ok()),
        })
    }

    /// `name`'s map once its version passes `after` (at once when it already has), or its
    /// current map after the long-poll; `None` when the node is not in the mesh.
    pub async fn map(&self, name: &str, after: u64) -> Option<MeshMap> {
        let mut generation = self.generation.subscribe();
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            {
                let state = self.state.read().await;
                state.netmap.node(name)?;
                let version = state.versions.get(name).copied().unwrap_or(0);
                if version > after || after == 0 || tokio::time::Instant::now() >= deadline {
                    let map = state.netmap.render(name)?;
                    return Some(MeshMap { version, map });
                }
            }
            if tokio::time::timeout_at(deadline, generation.changed())
                .await
                .is_err()
            {
                continue;
            }
        }
    }
}

/// Checks that the `connect` policies of `policies` compile, and that every tag key they
/// test is a label some joined host carries (a misspelt label would silently match nothing).
pub fn check_policies(
    policies: &warden_policy::Policies,
    known_labels: &BTreeSet<String>,
) -> Result<(), String> {
    let json = policies.policies_json().map_err(|e| e.to_string())?;
    let rules = connect_rules(&json).map_err(|e| e.to_string())?;
    for (key, using) in warden_mesh::rules::tag_keys(&rules) {
        if !known_labels.contains(&key) {
            let policy = using.into_iter().next().unwrap_or_default();
            return Err(format!(
                "policy `{policy}` tests the label `{key}`, which no joined host carries: check its spelling, or join a host with `--label {key}=…` first"
            ));
        }
    }
    Ok(())
}
