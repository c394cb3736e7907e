//! The compliance monitor's memory: each test's last recorded state.

use serde_json::Value;
use warden_model::Change;

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
}
