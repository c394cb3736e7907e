//! The mesh's nodes: enrollment (with address allocation in the same transaction), key
//! renewal, removal, and the rows the netmap compiler reads.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::Change;
use warden_model::Timestamp;

use crate::audit::Action;
use crate::{AuditContext, Store, StoreError};

/// A host or a person's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshNodeKind {
    /// A host joined through the agent.
    Host,
    /// A person's device.
    Device,
}

impl MeshNodeKind {
    /// `host` or `device`, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            MeshNodeKind::Host => "host",
            MeshNodeKind::Device => "device",
        }
    }
}

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshNode {
    /// Its unique name.
    pub name: String,
    /// Host or device.
    pub kind: MeshNodeKind,
    /// The host's name, or the device owner's login name.
    pub owner: String,
    /// Its WireGuard public key (base64).
    pub public_key: String,
    /// Its place in the mesh ranges.
    pub address_offset: u32,
    /// Where it receives WireGuard traffic, if announced.
    pub endpoint: Option<String>,
    /// When it enrolled first.
    pub created_at: Timestamp,
    /// When its current key was set.
    pub key_set_at: Timestamp,
    /// When its key stops being accepted, if ever.
    pub expires_at: Option<Timestamp>,
}

/// What enrolling asks for.
#[derive(Debug, Clone)]
pub struct NewMeshNode {
    /// The node's name.
    pub name: String,
    /// Host or device.
    pub kind: MeshNodeKind,
    /// The host's name, or the device owner's login name.
    pub owner: String,
    /// Its WireGuard public key (base64, checked by the caller).
    pub public_key: String,
    /// Where it receives WireGuard traffic.
    pub endpoint: Option<String>,
    /// When its key stops being accepted.
    pub expires_at: Option<Timestamp>,
}

/// A node with what the compiler needs besides: a host's labels, a device owner's groups
/// and whether the owner is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshMember {
    /// The node.
    pub node: MeshNode,
    /// A host's labels (empty for devices and hosts that left).
    pub labels: BTreeMap<String, String>,
    /// A device owner's groups now.
    pub groups: BTreeSet<String>,
    /// Whether the node may be in the mesh now: its host joined, or its owner is enabled
    /// and its key has not expired.
    pub live: bool,
}

const COLUMNS: &str = "m.name, m.kind, m.owner, m.public_key, m.address_offset, m.endpoint, m.created_at, m.key_set_at, m.expires_at";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn node_from_row(row: &AnyRow) -> Result<MeshNode, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(MeshNode {
        name: row.try_get("name")?,
        kind: match kind.as_str() {
            "host" => MeshNodeKind::Host,
            "device" => MeshNodeKind::Device,
            other => return Err(corrupt(format!("mesh node kind `{other}`"))),
        },
        owner: row.try_get("owner")?,
        public_key: row.try_get("public_key")?,
        address_offset: u32::try_from(row.try_get::<i64, _>("address_offset")?).map_err(corrupt)?,
        endpoint: row.try_get("endpoint")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
        key_set_at: Timestamp::from_millis(row.try_get("key_set_at")?),
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(Timestamp::from_millis),
    })
}

impl Store {
    /// Enrolls a node or renews its key, audited as `mesh.node.enroll`. A new node gets the
    /// offset `allocate` picks from those in use (it returns the refusal when the range is
    /// full); a known node keeps its offset. A key another node holds is refused, as is a
    /// name held by another owner or kind.
    pub async fn mesh_enroll(
        &self,
        ctx: &AuditContext,
        node: &NewMeshNode,
        allocate: impl FnOnce(&BTreeSet<u32>) -> Result<u32, String>,
    ) -> Result<MeshNode, StoreError> {
        let action = Action {
            name: Change::MeshNodeEnroll.into(),
            target: format!("mesh-node:{}", node.name),
            details: json!({
                "kind": node.kind.as_str(),
                "owner": node.owner,
                "public_key": node.public_key,
                "endpoint": node.endpoint,
                "expires_at": node.expires_at.map(|t| t.to_string()),
            }),
        };
        self.audited(ctx, action, async |conn| {
            let holder: Option<String> =
                sqlx::query_scalar("SELECT name FROM mesh_nodes WHERE public_key = $1")
                    .bind(&node.public_key)
                    .fetch_optional(&mut *conn)
                    .await?;
            if holder.as_ref().is_some_and(|h| *h != node.name) {
                return Err(StoreError::Conflict(
                    "this WireGuard key belongs to another node: every node must make its own key".to_owned(),
                ));
            }
            let existing = sqlx::query(&format!("SELECT {COLUMNS} FROM mesh_nodes m WHERE m.name = $1"))
                .bind(&node.name)
                .fetch_optional(&mut *conn)
                .await?;
            let stored = MeshNode {
                name: node.name.clone(),
                kind: node.kind,
                owner: node.owner.clone(),
                public_key: node.public_key.clone(),
                address_offset: 0,
                endpoint: node.endpoint.clone(),
                created_at: ctx.now,
                key_set_at: ctx.now,
                expires_at: node.expires_at,
            };
            match existing.as_ref().map(node_from_row).transpose()? {
                Some(old) if old.kind != node.kind || old.owner != node.owner => {
                    Err(StoreError::Conflict(format!(
                        "mesh node `{}` belongs to another {}: choose another name",
                        node.name,
                        if old.kind == MeshNodeKind::Host { "host" } else { "owner" }
                    )))
                }
                Some(old) => {
                    let key_set_at = if old.public_key == node.public_key { old.key_set_at } else { ctx.now };
                    sqlx::query(
                        "UPDATE mesh_nodes SET public_key = $1, endpoint = $2, key_set_at = $3, expires_at = $4 WHERE name = $5",
                    )
                    .bind(&node.public_key)
                    .bind(&node.endpoint)
                    .bind(key_set_at.as_millis())
                    .bind(node.expires_at.map(Timestamp::as_millis))
                    .bind(&node.name)
                    .execute(&mut *conn)
                    .await?;
                    Ok(MeshNode {
                        address_offset: old.address_offset,
                        created_at: old.created_at,
                        key_set_at,
                        ..stored
                    })
                }
                None => {
                    let used: Vec<i64> = sqlx::query_scalar("SELECT address_offset FROM mesh_nodes")
                        .fetch_all(&mut *conn)
                        .await?;
                    let used: BTreeSet<u32> = used.into_iter().filter_map(|o| u32::try_from(o).ok()).collect();
                    let offset = allocate(&used).map_err(StoreError::Conflict)?;
                    sqlx::query(
                        "INSERT INTO mesh_nodes (name, kind, owner, public_key, address_offset, endpoint, created_at, key_set_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
                    )
                    .bind(&node.name)
                    .bind(node.kind.as_str())
                    .bind(&node.owner)
                    .bind(&node.public_key)
                    .bind(i64::from(offset))
                    .bind(&node.endpoint)
                    .bind(ctx.now.as_millis())
                    .bind(node.expires_at.map(Timestamp::as_millis))
                    .execute(&mut *conn)
                    .await?;
                    Ok(MeshNode {
                        address_offset: offset,
                        ..stored
                    })
                }
            }
        })
        .await
    }

    /// Removes a node, audited as `mesh.node.remove`.
    pub async fn mesh_remove(&self, ctx: &AuditContext, name: &str) -> Result<(), StoreError> {
        let action = Action {
            name: Change::MeshNodeRemove.into(),
            target: format!("mesh-node:{name}"),
            details: serde_json::Value::Null,
        };
        self.audited(ctx, action, async |conn| {
            let deleted = sqlx::query("DELETE FROM mesh_nodes WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    kind: "mesh node",
                    name: name.to_owned(),
                });
            }
            Ok(())
        })
        .await
    }

    /// The node called `name`.
    pub async fn mesh_node(&self, name: &str) -> Result<Option<MeshNode>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM mesh_nodes m WHERE m.name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(node_from_row).transpose()
    }

    /// Every node with what the compiler needs, at `now`, by name.
    pub async fn mesh_members(&self, now: Timestamp) -> Result<Vec<MeshMember>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, h.labels, u.id AS user_id, u.disabled_at FROM mesh_nodes m \
             LEFT JOIN hosts h ON m.kind = 'host' AND h.name = m.owner \
             LEFT JOIN users u ON m.kind = 'device' AND u.name = m.owner ORDER BY m.name"
        ))
        .fetch_all(&self.pool)
        .await?;
        // Only the groups of people who own a device: the directory may be far larger than
        // the mesh, and this runs every second on every server.
        let groups = sqlx::query(
            "SELECT m.user_id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id \
             WHERE m.user_id IN (SELECT u.id FROM mesh_nodes n JOIN users u ON u.name = n.owner \
               WHERE n.kind = 'device') \
             UNION SELECT gr.user_id, g.name FROM grants gr JOIN groups g ON g.id = gr.group_id \
             WHERE gr.ended_at IS NULL AND gr.expires_at > $1 \
             AND gr.user_id IN (SELECT u.id FROM mesh_nodes n JOIN users u ON u.name = n.owner \
               WHERE n.kind = 'device')",
        )
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await?;
        let mut by_user: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in &groups {
            by_user
                .entry(row.try_get("user_id")?)
                .or_default()
                .insert(row.try_get("name")?);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let node = node_from_row(row)?;
            let labels: Option<String> = row.try_get("labels")?;
            let user_id: Option<String> = row.try_get("user_id")?;
            let disabled: Option<i64> = row.try_get("disabled_at")?;
            let unexpired = node.expires_at.is_none_or(|t| t > now);
            let live = match node.kind {
                MeshNodeKind::Host => labels.is_some() && unexpired,
                MeshNodeKind::Device => user_id.is_some() && disabled.is_none() && unexpired,
            };
            out.push(MeshMember {
                labels: labels
                    .map(|l| serde_json::from_str(&l))
                    .transpose()
                    .map_err(corrupt)?
                    .unwrap_or_default(),
                // A person's every device carries their groups.
                groups: user_id
                    .and_then(|u| by_user.get(&u).cloned())
                    .unwrap_or_default(),
                live,
                node,
            });
        }
        Ok(out)
    }

    /// The label keys joined hosts carry.
    pub async fn host_label_keys(&self) -> Result<BTreeSet<String>, StoreError> {
        Ok(self
            .hosts()
            .await?
            .into_iter()
            .flat_map(|h| h.labels.into_keys())
            .collect())
    }
}
