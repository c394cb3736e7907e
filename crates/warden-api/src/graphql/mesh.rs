//! The WireGuard mesh in GraphQL: its nodes (`read_directory`) and removing one
//! (`manage_hosts`). A removed node leaves every peer list at once; a host's agent or a
//! person's `warden mesh up` enrolls again only with a new sign-in or its mTLS identity.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use warden_store::Store;

use super::Capability;
use super::api_error;
use super::authz::authorize;
use crate::config::MeshConfig;

/// A node of the mesh.
#[derive(Debug, Clone, SimpleObject)]
pub struct MeshNodeInfo {
    /// Its name.
    pub name: String,
    /// `host` or `device`.
    pub kind: String,
    /// The host's name, or the device owner's login name.
    pub owner: String,
    /// Its overlay IPv4 address.
    pub ipv4: String,
    /// Its overlay IPv6 address.
    pub ipv6: String,
    /// Its WireGuard public key.
    pub public_key: String,
    /// Where it receives WireGuard traffic, if announced.
    pub endpoint: Option<String>,
    /// Its labels (hosts), `key=value`.
    pub labels: Vec<String>,
    /// Its owner's groups (devices).
    pub groups: Vec<String>,
    /// Whether it is in the mesh now: its host joined, or its owner is enabled and its key
    /// unexpired.
    pub live: bool,
    /// When its current key was set, RFC 3339.
    pub key_set_at: String,
    /// When its key stops being accepted, RFC 3339.
    pub expires_at: Option<String>,
}

/// Mesh queries.
#[derive(Debug, Default)]
pub struct MeshQuery;

#[Object]
impl MeshQuery {
    /// Every mesh node, by name.
    async fn mesh_nodes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<MeshNodeInfo>> {
        let caller = authorize(ctx, Capability::ReadDirectory, "mesh").await?;
        let store = ctx.data::<Arc<Store>>()?;
        let ranges = ctx.data::<MeshConfig>()?.ranges;
        let members = store
            .mesh_members(caller.audit.now)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(members
            .into_iter()
            .map(|m| {
                let (ipv4, ipv6) = ranges
                    .addresses(m.node.address_offset)
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .unwrap_or_default();
                MeshNodeInfo {
                    kind: m.node.kind.as_str().to_owned(),
                    labels: m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    groups: m.groups.into_iter().collect(),
                    live: m.live,
                    key_set_at: m.node.key_set_at.to_string(),
                    expires_at: m.node.expires_at.map(|t| t.to_string()),
                    name: m.node.name,
                    owner: m.node.owner,
                    ipv4,
                    ipv6,
                    public_key: m.node.public_key,
                    endpoint: m.node.endpoint,
                }
            })
            .collect())
    }
}

/// Mesh changes.
#[derive(Debug, Default)]
pub struct MeshMutation;

#[Object]
impl MeshMutation {
    /// Removes a node from the mesh: it leaves every peer list within a second and its
    /// flows are cut. It comes back only by enrolling again.
    async fn remove_mesh_node(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<bool> {
        let caller = authorize(ctx, Capability::ManageHosts, &format!("mesh-node:{name}")).await?;
        let store = ctx.data::<Arc<Store>>()?;
        store
            .mesh_remove(&caller.audit, &name)
            .await
            .map_err(|e| api_error(e, caller))?;
        Ok(true)
    }
}
