//! The compliance monitor's memory: each test's last recorded state, and its latest run.

use serde_json::Value;
use sqlx::Row;
use warden_model::{Change, Timestamp};

use crate::AuditContext;
use crate::write::Action;
use crate::{Store, StoreError};

impl Store {
    /// Records that compliance test `test` now passes or fails, as `compliance.test.pass` or
    /// `compliance.test.fail` on `compliance:TEST` with `details`, if that is news: the first
    /// state seen, or a change from the last. Every replica's monitor may call it; one records
    /// each change. Whether this call recorded it.
    pub async fn record_compliance_state(
        &self,
        ctx: &AuditContext,
        test: &str,
        passing: bool,
        exceptions: u64,
        details: Value,
    ) -> Result<bool, StoreError> {
        let name = if passing {
            Change::ComplianceTestPass
        } else {
            Change::ComplianceTestFail
        };
        let action = Action {
            name: name.into(),
            target: format!("compliance:{test}"),
            details,
        };
        self.audited_first(ctx, action, async |conn| {
            let done = sqlx::query(
                "INSERT INTO compliance_tests (test, passing, since, exceptions) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (test) DO UPDATE SET passing = excluded.passing, since = excluded.since, \
                 exceptions = excluded.exceptions WHERE compliance_tests.passing <> excluded.passing",
            )
            .bind(test)
            .bind(i64::from(passing))
            .bind(ctx.now.as_millis())
            .bind(i64::try_from(exceptions).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Keeps the monitor's latest run (its results as JSON, over `from`..`to`, computed at
    /// `at`), replacing the one before. Derived data, like a cache: not audited.
    pub async fn save_compliance_run(
        &self,
        at: Timestamp,
        from: Timestamp,
        to: Timestamp,
        results: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO compliance_runs (id, computed_at, period_from, period_to, results) \
             VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET computed_at = excluded.computed_at, \
             period_from = excluded.period_from, period_to = excluded.period_to, results = excluded.results \
             WHERE compliance_runs.computed_at <= excluded.computed_at",
        )
        .bind(at.as_millis())
        .bind(from.as_millis())
        .bind(to.as_millis())
        .bind(results)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The monitor's latest run: when, its period, and its results as JSON.
    pub async fn compliance_run(
        &self,
    ) -> Result<Option<(Timestamp, Timestamp, Timestamp, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT computed_at, period_from, period_to, results FROM compliance_runs WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                Timestamp::from_millis(r.try_get("computed_at")?),
                Timestamp::from_millis(r.try_get("period_from")?),
                Timestamp::from_millis(r.try_get("period_to")?),
                r.try_get("results")?,
            ))
        })
        .transpose()
    }
}
