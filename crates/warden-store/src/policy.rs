//! Policy versions: every policy set applied, with its files and hash; the newest is active.

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_model::Change;
use warden_model::Timestamp;

use crate::audit::Action;
use crate::{AuditContext, Store, StoreError};

/// A policy set as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// 1, 2, …; the highest is active.
    pub version: i64,
    /// SHA-256 of the files (hex), as `warden policy history` shows it.
    pub hash: String,
    /// File name to text: the `*.cedar` files and the tests file.
    pub files: BTreeMap<String, String>,
    /// How many policies.
    pub policies: i64,
    /// How many tests passed when it was applied.
    pub tests: i64,
    /// Who applied it.
    pub applied_by: String,
    /// When.
    pub applied_at: Timestamp,
}

/// A policy set to activate.
#[derive(Debug, Clone)]
pub struct NewPolicyVersion {
    /// The version it must get: one more than the active one. Someone else applying first
    /// makes this a conflict rather than a silent overwrite.
    pub version: i64,
    /// SHA-256 of the files.
    pub hash: String,
    /// File name to text.
    pub files: BTreeMap<String, String>,
    /// How many policies.
    pub policies: i64,
    /// How many tests passed.
    pub tests: i64,
    /// What changed, for the audit event (file names added, changed and removed).
    pub changes: serde_json::Value,
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("policy_versions: {e}"))
}

fn from_row(row: &AnyRow, with_files: bool) -> Result<PolicyVersion, StoreError> {
    let files = if with_files {
        let text: String = row.try_get("files")?;
        serde_json::from_str(&text).map_err(corrupt)?
    } else {
        BTreeMap::new()
    };
    Ok(PolicyVersion {
        version: row.try_get("version")?,
        hash: row.try_get("hash")?,
        files,
        policies: row.try_get("policies")?,
        tests: row.try_get("tests")?,
        applied_by: row.try_get("applied_by")?,
        applied_at: Timestamp::from_millis(row.try_get("applied_at")?),
    })
}

impl Store {
    /// Stores and activates a policy set, audited as `policy.apply` with its version, hash and
    /// what changed.
    pub async fn apply_policy(
        &self,
        ctx: &AuditContext,
        new: &NewPolicyVersion,
    ) -> Result<(), StoreError> {
        let action = Action {
            name: Change::PolicyApply.into(),
            target: format!("policy:v{}", new.version),
            details: json!({
                "version": new.version,
                "hash": new.hash,
                "policies": new.policies,
                "tests": new.tests,
                "files": new.changes,
            }),
        };
        let files = serde_json::to_string(&new.files).map_err(corrupt)?;
        self.audited(ctx, action, async |conn| {
            let row = sqlx::query("SELECT MAX(version) AS v FROM policy_versions")
                .fetch_one(&mut *conn)
                .await?;
            let latest: Option<i64> = row.try_get("v")?;
            if latest.unwrap_or(0) + 1 != new.version {
                return Err(StoreError::Conflict(
                    "the active policy changed while this one was checked; apply again".into(),
                ));
            }
            sqlx::query(
                "INSERT INTO policy_versions (version, hash, files, policies, tests, applied_by, applied_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(new.version)
            .bind(&new.hash)
            .bind(&files)
            .bind(new.policies)
            .bind(new.tests)
            .bind(ctx.actor.to_string())
            .bind(ctx.now.as_millis())
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    /// The active policy set's version number, if any was ever applied.
    pub async fn active_policy_version(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(version) AS v FROM policy_versions")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("v")?)
    }

    /// One version with its files (the active one when `version` is `None`).
    pub async fn policy_version(
        &self,
        version: Option<i64>,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        let columns = "version, hash, files, policies, tests, applied_by, applied_at";
        let row = match version {
            Some(v) => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM policy_versions WHERE version = $1"
                ))
                .bind(v)
                .fetch_optional(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {columns} FROM policy_versions ORDER BY version DESC LIMIT 1"
                ))
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.as_ref().map(|r| from_row(r, true)).transpose()
    }

    /// Every version, newest first, without files.
    pub async fn policy_history(&self) -> Result<Vec<PolicyVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, hash, policies, tests, applied_by, applied_at \
             FROM policy_versions ORDER BY version DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| from_row(r, false)).collect()
    }
}
