//! Certificate authority keys (sealed) and issued SSH certificates.

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::Change;
use warden_model::Timestamp;

use crate::audit::Action;
use crate::users::new_id;
use crate::{AuditContext, Store, StoreError};

/// A CA key as stored: the public half in the clear, the private half sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaKey {
    /// Stable id.
    pub id: String,
    /// `ssh-user`, `ssh-host`, `x509-root` or `x509-issuing`.
    pub kind: String,
    /// The public key (OpenSSH line or PEM).
    pub public_key: String,
    /// The private key sealed under the key-encryption key.
    pub sealed_key: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// An SSH certificate to record.
#[derive(Debug, Clone)]
pub struct NewSshCertificate {
    /// Serial (unique, below 2^63).
    pub serial: u64,
    /// The CA key that signs it.
    pub ca_key_id: String,
    /// `user` or `host`.
    pub kind: &'static str,
    /// The certificate's key id.
    pub key_id: String,
    /// The person it was issued for, by user id (`None` for hosts and services).
    pub holder_user_id: Option<String>,
    /// Its principals.
    pub principals: Vec<String>,
    /// Not before, seconds since the epoch.
    pub valid_after: u64,
    /// Not after, seconds since the epoch.
    pub valid_before: u64,
    /// The policy decisions that chose its principals (user certificates), for the audit.
    pub policy: serde_json::Value,
}

/// A user certificate that still works, as [`Store::ssh_user_certificate_live`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSshCertificate {
    /// The person it was issued for (`None` for services, and for rows from before the
    /// holder was stored).
    pub holder_user_id: Option<String>,
}

/// An X.509 certificate to record.
#[derive(Debug, Clone)]
pub struct NewX509Certificate {
    /// Serial (unique, below 2^63).
    pub serial: u64,
    /// The issuing CA key that signs it.
    pub ca_key_id: String,
    /// Its SPIFFE id.
    pub spiffe_id: String,
    /// Not before, seconds since the epoch.
    pub not_before: u64,
    /// Not after, seconds since the epoch.
    pub not_after: u64,
}

fn key_from_row(row: &AnyRow) -> Result<CaKey, StoreError> {
    Ok(CaKey {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        public_key: row.try_get("public_key")?,
        sealed_key: row.try_get("sealed_key")?,
        created_at: Timestamp::from_millis(row.try_get("created_at")?),
    })
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("{what} {v} is out of range")))
}

impl Store {
    /// The keys of `kind` still trusted at `now`, newest (the one that signs) first. A rotated
    /// key stays trusted until the end of its overlap window.
    pub async fn ca_keys(&self, kind: &str, now: Timestamp) -> Result<Vec<CaKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, public_key, sealed_key, created_at FROM ca_keys WHERE kind = $1 \
             AND (retired_at IS NULL OR retired_at > $2) ORDER BY created_at DESC, id DESC",
        )
        .bind(kind)
        .bind(now.as_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Adds new keys (each `(kind, public key, sealed key)`), audited as `action` (`ca.create`
    /// or `ca.rotate`) naming `label` (`ssh-user`, `ssh-host` or `x509`). With `retire_at`,
    /// the keys of those kinds in force now stay trusted until then (the overlap window).
    pub async fn add_ca_keys(
        &self,
        ctx: &AuditContext,
        action: Change,
        label: &str,
        new_keys: &[(&str, String, String)],
        retire_at: Option<Timestamp>,
    ) -> Result<Vec<CaKey>, StoreError> {
        let action = Action {
            name: action.into(),
            target: format!("ca:{label}"),
            details: json!({
                "new_public_keys": new_keys.iter().map(|(kind, public, _)| json!({"kind": kind, "public_key": public})).collect::<Vec<_>>(),
                "old_keys_trusted_until": retire_at.map(|t| t.to_string()),
            }),
        };
        self.audited(ctx, action, async |conn| {
            let mut made = Vec::with_capacity(new_keys.len());
            for (kind, public, sealed) in new_keys {
                if let Some(retire_at) = retire_at {
                    sqlx::query(
                        "UPDATE ca_keys SET retired_at = $1 WHERE kind = $2 AND retired_at IS NULL",
                    )
                    .bind(retire_at.as_millis())
                    .bind(*kind)
                    .execute(&mut *conn)
                    .await?;
                }
                let key = CaKey {
                    id: new_id(),
                    kind: (*kind).to_owned(),
                    public_key: public.clone(),
                    sealed_key: sealed.clone(),
                    created_at: ctx.now,
                };
                sqlx::query(
                    "INSERT INTO ca_keys (id, kind, public_key, sealed_key, created_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&key.id)
                .bind(&key.kind)
                .bind(&key.public_key)
                .bind(&key.sealed_key)
                .bind(key.created_at.as_millis())
                .execute(&mut *conn)
                .await?;
                made.push(key);
            }
            Ok(made)
        })
        .await
    }

    /// Records an issued X.509 certificate, audited as `x509.issue`; `sign` runs inside the
    /// transaction, so a certificate whose record cannot be written is never handed out.
    pub async fn issue_x509_certificate<T>(
        &self,
        ctx: &AuditContext,
        cert: &NewX509Certificate,
        sign: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let action = Action {
            name: Change::X509Issue.into(),
            target: format!("x509-cert:{}", cert.serial),
            details: json!({
                "spiffe_id": cert.spiffe_id,
                "not_before": cert.not_before,
                "not_after": cert.not_after,
                "ca_key_id": cert.ca_key_id,
            }),
        };
        let serial = to_i64(cert.serial, "serial")?;
        let not_before = to_i64(cert.not_before, "not_before")?;
        let not_after = to_i64(cert.not_after, "not_after")?;
        self.audited(ctx, action, async |conn| {
            let signed = sign()?;
            sqlx::query(
                "INSERT INTO x509_certificates (serial, ca_key_id, spiffe_id, not_before, not_after, issued_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(serial)
            .bind(&cert.ca_key_id)
            .bind(&cert.spiffe_id)
            .bind(not_before)
            .bind(not_after)
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await?;
            Ok(signed)
        })
        .await
    }

    /// Whether the X.509 certificate `serial` was issued here and is not revoked.
    pub async fn x509_certificate_valid(&self, serial: u64) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT revoked_at FROM x509_certificates WHERE serial = $1")
            .bind(to_i64(serial, "serial")?)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<i64>, _>("revoked_at")?.is_none(),
            None => false,
        })
    }

    /// Records an issued SSH certificate, audited as `ssh.issue`. `sign` runs inside the same
    /// transaction and returns the certificate text; if the record or its event cannot be
    /// written, the certificate is never handed out.
    pub async fn issue_ssh_certificate<T>(
        &self,
        ctx: &AuditContext,
        cert: &NewSshCertificate,
        sign: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let action = Action {
            name: Change::SshIssue.into(),
            target: format!("ssh-cert:{}", cert.serial),
            details: json!({
                "kind": cert.kind,
                "key_id": cert.key_id,
                "principals": cert.principals,
                "valid_after": cert.valid_after,
                "valid_before": cert.valid_before,
                "ca_key_id": cert.ca_key_id,
                "policy": cert.policy,
            }),
        };
        let serial = to_i64(cert.serial, "serial")?;
        let principals = serde_json::to_string(&cert.principals)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = serde_json::json!([
            serial,
            cert.ca_key_id,
            cert.kind,
            cert.key_id,
            principals,
            to_i64(cert.valid_after, "valid_after")?,
            to_i64(cert.valid_before, "valid_before")?,
            ctx.now.as_millis(),
            cert.holder_user_id,
        ])
        .to_string();
        self.audited_certificate(ctx, action, row, async |_| sign())
            .await
    }

    /// Revokes the SSH certificate with `serial`, audited as `ssh.revoke`.
    pub async fn revoke_ssh_certificate(
        &self,
        ctx: &AuditContext,
        serial: u64,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::SshRevoke.into(),
            target: format!("ssh-cert:{serial}"),
            details: serde_json::Value::Null,
        };
        let s = to_i64(serial, "serial")?;
        self.audited(ctx, action, async |conn| {
            let row = sqlx::query("SELECT revoked_at FROM ssh_certificates WHERE serial = $1")
                .bind(s)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound {
                    kind: "certificate serial",
                    name: serial.to_string(),
                });
            };
            if row.try_get::<Option<i64>, _>("revoked_at")?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "certificate {serial} is already revoked"
                )));
            }
            sqlx::query("UPDATE ssh_certificates SET revoked_at = $1 WHERE serial = $2")
                .bind(ctx.now.as_millis())
                .bind(s)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Revokes every SSH certificate whose key id is `key_id` (such as all of one token's,
    /// `user:alice token:…`), audited as `ssh.revoke_key_id`.
    pub async fn revoke_ssh_key_id(
        &self,
        ctx: &AuditContext,
        key_id: &str,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::SshRevokeKeyId.into(),
            target: format!("ssh-key-id:{key_id}"),
            details: serde_json::Value::Null,
        };
        self.audited(ctx, action, async |conn| {
            let existing = sqlx::query("SELECT 1 FROM ssh_revoked_key_ids WHERE key_id = $1")
                .bind(key_id)
                .fetch_optional(&mut *conn)
                .await?;
            if existing.is_some() {
                return Err(StoreError::Conflict(format!(
                    "key id `{key_id}` is already revoked"
                )));
            }
            let issued = sqlx::query("SELECT 1 FROM ssh_certificates WHERE key_id = $1 LIMIT 1")
                .bind(key_id)
                .fetch_optional(&mut *conn)
                .await?;
            if issued.is_none() {
                return Err(StoreError::NotFound {
                    kind: "certificate key id",
                    name: key_id.to_owned(),
                });
            }
            sqlx::query("INSERT INTO ssh_revoked_key_ids (key_id, revoked_at) VALUES ($1, $2)")
                .bind(key_id)
                .bind(ctx.now.as_millis())
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Every revoked key id, and the newest revocation time (0 when none).
    pub async fn revoked_key_ids(&self) -> Result<(Vec<String>, i64), StoreError> {
        let rows =
            sqlx::query("SELECT key_id, revoked_at FROM ssh_revoked_key_ids ORDER BY key_id")
                .fetch_all(&self.pool)
                .await?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut newest = 0i64;
        for row in &rows {
            ids.push(row.try_get("key_id")?);
            newest = newest.max(row.try_get("revoked_at")?);
        }
        Ok((ids, newest))
    }

    /// Revoked serials of the certificates a CA key signed, and the newest revocation time
    /// (the KRL's version).
    pub async fn revoked_serials(&self, ca_key_id: &str) -> Result<(Vec<u64>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at FROM ssh_certificates WHERE ca_key_id = $1 AND revoked_at IS NOT NULL",
        )
        .bind(ca_key_id)
        .fetch_all(&self.pool)
        .await?;
        let mut serials = Vec::with_capacity(rows.len());
        let mut newest = 0i64;
        for row in &rows {
            let serial: i64 = row.try_get("serial")?;
            serials.push(
                u64::try_from(serial).map_err(|_| StoreError::Corrupt("negative serial".into()))?,
            );
            newest = newest.max(row.try_get("revoked_at")?);
        }
        Ok((serials, newest))
    }
}

impl Store {
    /// The user certificate `serial` with `key_id`, if Warden issued it and revoked neither it
    /// nor its key id; `None` otherwise.
    pub async fn ssh_user_certificate_live(
        &self,
        serial: u64,
        key_id: &str,
    ) -> Result<Option<LiveSshCertificate>, StoreError> {
        let Ok(serial) = i64::try_from(serial) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT c.holder_user_id FROM ssh_certificates c WHERE c.serial = $1 \
             AND c.kind = 'user' AND c.key_id = $2 AND c.revoked_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM ssh_revoked_key_ids r WHERE r.key_id = c.key_id)",
        )
        .bind(serial)
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(LiveSshCertificate {
                holder_user_id: row.try_get("holder_user_id")?,
            })
        })
        .transpose()
    }
}
