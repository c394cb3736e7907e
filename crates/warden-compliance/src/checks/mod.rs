//! The tests, one check each. A check sees every event in sequence order and, at the end of
//! the period, says what is still open; it reports items to its tally, which keeps those
//! that fall in the period.
//!
//! A check's state does not depend on where the period ends: `finish` reads it without
//! consuming it, so one evaluator kept up to date can answer "as of now" again and again,
//! and what the server observes beside the log (checkpoints, recordings) is read only then.

mod changes;
mod grants;
mod integrity;
mod leavers;
mod reviews;
mod sessions;
mod signin;

use warden_audit::AuditEvent;

use crate::report::Tally;
use crate::report::{Observations, Parameters};
use crate::test_id::TestId;

/// One test's reading of the log.
pub(crate) trait Check: Send + Sync {
    /// Whether the check reads events of this action at all; the evaluator asks once per
    /// action and then passes each check only the events it reads.
    fn wants(&self, action: &str) -> bool;
    /// Sees one event (in sequence order, before the end of the period).
    fn see(&mut self, e: &AuditEvent, tally: &mut Tally);
    /// Closes the period: decides what can be decided as of its end, from the state as it
    /// is (which stays as it was, for a later end).
    fn finish(&self, end: &End<'_>, tally: &mut Tally);
    /// The period now starts at `from` (later than before): forgets what was kept only for
    /// items before it.
    fn start_at(&mut self, _from: i64) {}
}

/// What a check knows when the period closes.
pub(crate) struct End<'a> {
    /// The period's end, milliseconds.
    pub(crate) time: i64,
    /// The server's observations.
    pub(crate) observations: &'a Observations,
    /// The last event seen, by sequence number.
    pub(crate) last_seq: u64,
}

/// The check for a test.
pub(crate) fn check(id: TestId, params: Parameters) -> Box<dyn Check> {
    match id {
        TestId::SigninPasskey => Box::new(signin::SigninPasskey::default()),
        TestId::PasskeyEnrollment => Box::new(signin::PasskeyEnrollment::new(params)),
        TestId::UniqueIdentity => Box::new(signin::UniqueIdentity::default()),
        TestId::LeaverDeprovision => Box::new(leavers::LeaverDeprovision::new(params)),
        TestId::GrantApproval => Box::new(grants::GrantApproval::default()),
        TestId::GrantExpiry => Box::new(grants::GrantExpiry::new(params)),
        TestId::AccessReview => Box::new(reviews::AccessReview::new(params)),
        TestId::SshRecorded => Box::new(sessions::SshRecorded::new(params)),
        TestId::PolicyChange => Box::new(changes::PolicyChange::default()),
        TestId::VulnSla => Box::new(changes::VulnSla::default()),
        TestId::AuditIntegrity => Box::new(integrity::AuditIntegrity::new(params)),
        TestId::SessionLimits => Box::new(sessions::SessionLimits::new(params)),
        TestId::EmergencyAccess => Box::new(changes::EmergencyAccess::default()),
    }
}
