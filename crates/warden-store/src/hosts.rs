//! Hosts joined through the agent, and the one-time join tokens that admit them.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::Change;
use warden_model::Timestamp;

use crate::audit::Action;
use crate::{AuditContext, Store, StoreError};

/// A joined host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Its name (from the join token): the host certificate's first principal.
    pub name: String,
    /// Labels, for policy.
    pub labels: BTreeMap<String, String>,
    /// Addresses clients use to reach it: further host certificate principals.
    pub addresses: Vec<String>,
    /// Where its sshd listens, as the agent reported it.
    pub sshd_addr: Option<String>,
    /// When it last joined.
    pub joined_at: Timestamp,
}

/// A join token to record. Only the hash of its secret is stored.
#[derive(Debug, Clone)]
pub struct NewJoinToken {
    /// Public id (the part of the token before the secret).
    pub id: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// The host it admits.
    pub host: String,
    /// Labels the host gets.
    pub labels: BTreeMap<String, String>,
    /// Addresses the host gets as certificate principals.
    pub addresses: Vec<String>,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A join token as stored, for checking a presented secret.
#[derive(Debug, Clone)]
pub struct JoinTokenCredential {
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn host_from_row(row: &AnyRow) -> Result<Host, StoreError> {
    let labels: String = row.try_get("labels")?;
    let addresses: String = row.try_get("addresses")?;
    Ok(Host {
        name: row.try_get("name")?,
        labels: serde_json::from_str(&labels).map_err(corrupt)?,
        addresses: serde_json::from_str(&addresses).map_err(corrupt)?,
        sshd_addr: row.try_get("sshd_addr")?,
        joined_at: Timestamp::from_millis(row.try_get("joined_at")?),
    })
}

impl Store {
    /// Records a join token, audited as `host.join_token.create` (never with its secret).
    pub async fn create_join_token(
        &self,
        ctx: &AuditContext,
        token: &NewJoinToken,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::HostJoinTokenCreate.into(),
            target: format!("host:{}", token.host),
            details: json!({
                "token_id": token.id,
                "labels": token.labels,
                "addresses": token.addresses,
                "expires_at": token.expires_at.to_string(),
            }),
        };
        let labels = serde_json::to_string(&token.labels).map_err(corrupt)?;
        let addresses = serde_json::to_string(&token.addresses).map_err(corrupt)?;
        self.audited(ctx, action, async |conn| {
            sqlx::query(
                "INSERT INTO join_tokens (id, secret_hash, host, labels, addresses, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&token.id)
            .bind(&token.secret_hash)
            .bind(&token.host)
            .bind(&labels)
            .bind(&addresses)
            .bind(ctx.now.as_millis())
            .bind(token.expires_at.as_millis())
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// Spends join token `token_id` and records the host it admits, audited as `host.join`.
    /// `check` compares the presented secret with the stored hash (in constant time). An
    /// unknown, used, expired or wrong token changes nothing and is recorded as a failure.
    pub async fn join_host(
        &self,
        ctx: &AuditContext,
        token_id: &str,
        sshd_addr: &str,
        check: impl FnOnce(&JoinTokenCredential) -> bool,
    ) -> Result<Host, StoreError> {
        let action = Action {
            name: Change::HostJoin.into(),
            target: format!("join-token:{token_id}"),
            details: json!({ "sshd_addr": sshd_addr }),
        };
        self.audited(ctx, action, async |conn| {
            let row = sqlx::query(
                "SELECT secret_hash, host, labels, addresses, expires_at, used_at FROM join_tokens WHERE id = $1",
            )
            .bind(token_id)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::Conflict("unknown join token".to_owned()));
            };
            let credential = JoinTokenCredential {
                secret_hash: row.try_get("secret_hash")?,
            };
            if !check(&credential) {
                return Err(StoreError::Conflict("wrong join token secret".to_owned()));
            }
            if row.try_get::<Option<i64>, _>("used_at")?.is_some() {
                return Err(StoreError::Conflict(
                    "join token already used: create a new one with `warden admin join-token create`".to_owned(),
                ));
            }
            if row.try_get::<i64, _>("expires_at")? <= ctx.now.as_millis() {
                return Err(StoreError::Conflict(
                    "join token expired: create a new one with `warden admin join-token create`".to_owned(),
                ));
            }
            let name: String = row.try_get("host")?;
            let labels: String = row.try_get("labels")?;
            let addresses: String = row.try_get("addresses")?;
            sqlx::query("UPDATE join_tokens SET used_at = $1 WHERE id = $2")
                .bind(ctx.now.as_millis())
                .bind(token_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO hosts (name, labels, addresses, sshd_addr, joined_at, last_seen_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, addresses = excluded.addresses, \
                 sshd_addr = excluded.sshd_addr, joined_at = excluded.joined_at, last_seen_at = excluded.last_seen_at",
            )
            .bind(&name)
            .bind(&labels)
            .bind(&addresses)
            .bind(sshd_addr)
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await?;
            Ok(Host {
                name,
                labels: serde_json::from_str(&labels).map_err(corrupt)?,
                addresses: serde_json::from_str(&addresses).map_err(corrupt)?,
                sshd_addr: Some(sshd_addr.to_owned()),
                joined_at: ctx.now,
            })
        })
        .await
    }

    /// Removes a host, audited as `host.remove`: its agent's X.509 certificates (named by
    /// `spiffe_id`) are revoked, so it can no longer renew, and its SSH host certificates are
    /// marked revoked. Its sessions and mesh entries follow in later issues.
    pub async fn remove_host(
        &self,
        ctx: &AuditContext,
        name: &str,
        spiffe_id: &str,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::HostRemove.into(),
            target: format!("host:{name}"),
            details: serde_json::Value::Null,
        };
        self.audited(ctx, action, async |conn| {
            let deleted = sqlx::query("DELETE FROM hosts WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    kind: "host",
                    name: name.to_owned(),
                });
            }
            sqlx::query(
                "UPDATE x509_certificates SET revoked_at = $1 WHERE spiffe_id = $2 AND revoked_at IS NULL",
            )
            .bind(ctx.now.as_millis())
            .bind(spiffe_id)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE ssh_certificates SET revoked_at = $1 WHERE kind = 'host' AND key_id = $2 AND revoked_at IS NULL",
            )
            .bind(ctx.now.as_millis())
            .bind(format!("host:{name}"))
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// The host called `name`, if it has joined.
    pub async fn host(&self, name: &str) -> Result<Option<Host>, StoreError> {
        let row = sqlx::query(
            "SELECT name, labels, addresses, sshd_addr, joined_at FROM hosts WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(host_from_row).transpose()
    }

    /// Every joined host, by name.
    pub async fn hosts(&self) -> Result<Vec<Host>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, labels, addresses, sshd_addr, joined_at FROM hosts ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(host_from_row).collect()
    }

    /// Notes that `name`'s agent reached Warden at `at`, running `agent_version`. Health, not
    /// a change of anything the policy reads, so it is not audited; written at most once per
    /// `every_ms` per host (or when the version changes), so agents polling often cost little.
    pub async fn host_contact(
        &self,
        name: &str,
        at: Timestamp,
        agent_version: Option<&str>,
        every_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE hosts SET last_seen_at = $1, agent_version = COALESCE($2, agent_version) \
             WHERE name = $3 AND (last_seen_at < $4 OR COALESCE(agent_version, '') <> COALESCE($2, agent_version, ''))",
        )
        .bind(at.as_millis())
        .bind(agent_version)
        .bind(name)
        .bind(at.as_millis().saturating_sub(every_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every joined host's health, by name: its last contact, its agent's version, and when
    /// its newest unrevoked client certificate (SPIFFE id `{spiffe_prefix}{name}`) expires.
    pub async fn host_health(&self, spiffe_prefix: &str) -> Result<Vec<HostHealth>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.name, h.last_seen_at, h.agent_version, \
             (SELECT MAX(c.not_after) FROM x509_certificates c \
              WHERE c.spiffe_id = $1 || h.name AND c.revoked_at IS NULL) AS certificate_expires_at \
             FROM hosts h ORDER BY h.name",
        )
        .bind(spiffe_prefix)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(HostHealth {
                    name: row.try_get("name")?,
                    last_contact: Timestamp::from_millis(row.try_get("last_seen_at")?),
                    agent_version: row.try_get("agent_version")?,
                    // Certificates keep their validity in seconds, as X.509 does.
                    certificate_expires_at: row
                        .try_get::<Option<i64>, _>("certificate_expires_at")?
                        .map(|secs| Timestamp::from_millis(secs.saturating_mul(1000))),
                })
            })
            .collect()
    }
}

/// How a joined host's agent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostHealth {
    /// The host.
    pub name: String,
    /// When its agent last reached Warden (or it joined).
    pub last_contact: Timestamp,
    /// The agent's version, as it last said (`None` before it said).
    pub agent_version: Option<String>,
    /// When its newest unrevoked client certificate expires.
    pub certificate_expires_at: Option<Timestamp>,
}
