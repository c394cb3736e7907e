//! Warden's compliance evidence, without I/O and without reading the clock: the shipped
//! control catalogs (SOC 2, HIPAA) and the automated tests that evidence them, computed from
//! the audit log's own events over a period.
//!
//! A test is a pure function of the events (in sequence order), the period, the parameters
//! (limits such as the time allowed to deprovision a leaver) and a few observations the
//! server makes beside the log (the settings in force, the signed checkpoints, whether each
//! session recording still hashes to what the log recorded). The server and an offline
//! verifier run the same code over the same inputs, so an auditor who holds the events and
//! the log's public key can recompute every result.
//!
//! Each test yields a population (every sign-in, every leaver, every grant …), the
//! exceptions among it with the events they rest on, and what is still pending (a grant not
//! yet due to end when the period closes). A test passes when it has no exception.
//!
//! Threat model: the events come from Warden's own log, whose integrity the audit crate
//! proves; the tests read them defensively (an unexpected shape is no evidence, never a
//! panic). Observations are the server's statement and are marked as such wherever they are
//! shown. What the tests cannot see (systems that do not sign in through Warden) each control
//! states plainly.

pub mod bundle;
mod catalog;
mod checks;
mod evaluate;
mod event;
mod period;
mod report;

pub use catalog::{Catalog, CatalogError, Control, Framework, UnknownControl, UnknownFramework};
pub use evaluate::{Evaluator, evaluate};
pub use period::{Period, PeriodError};
pub use report::{
    CheckpointSeen, Item, Observations, Parameters, RecordingState, Settings, TestResult, human,
};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An automated test, by the id catalogs, the API and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestId {
    /// Every sign-in by a person was completed with a passkey, user verified, before the
    /// session acted.
    SigninPasskey,
    /// Every person held a passkey within the enrollment window of their account.
    PasskeyEnrollment,
    /// Every interactive access was by one named person: no account in two places at once,
    /// no service identity in an interactive shell.
    UniqueIdentity,
    /// Every leaver's access ended within the limit, and nothing of theirs was used after.
    LeaverDeprovision,
    /// Every temporary grant was approved by someone other than the requester.
    GrantApproval,
    /// Every temporary grant ended on time.
    GrantExpiry,
    /// Every group was reviewed within the review interval, and every revocation verified.
    AccessReview,
    /// Every SSH session went through the proxy, ended on the record and was recorded, and
    /// its recording still hashes to what the log recorded.
    SshRecorded,
    /// Every policy change went through apply with its tests passing, none missing.
    PolicyChange,
    /// Vulnerabilities were fixed within their SLA or formally accepted before it ran out.
    VulnSla,
    /// The audit log is covered by consistent signed checkpoints with no gap over the limit.
    AuditIntegrity,
    /// Idle and maximum session limits were in force and no SSH session outlived them.
    SessionLimits,
}

impl TestId {
    /// Every test, in the order they are shown.
    pub const ALL: [TestId; 12] = [
        TestId::SigninPasskey,
        TestId::PasskeyEnrollment,
        TestId::UniqueIdentity,
        TestId::LeaverDeprovision,
        TestId::GrantApproval,
        TestId::GrantExpiry,
        TestId::AccessReview,
        TestId::SshRecorded,
        TestId::PolicyChange,
        TestId::VulnSla,
        TestId::AuditIntegrity,
        TestId::SessionLimits,
    ];

    /// The id as written in catalogs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            TestId::SigninPasskey => "signin-passkey",
            TestId::PasskeyEnrollment => "passkey-enrollment",
            TestId::UniqueIdentity => "unique-identity",
            TestId::LeaverDeprovision => "leaver-deprovision",
            TestId::GrantApproval => "grant-approval",
            TestId::GrantExpiry => "grant-expiry",
            TestId::AccessReview => "access-review",
            TestId::SshRecorded => "ssh-recorded",
            TestId::PolicyChange => "policy-change",
            TestId::VulnSla => "vuln-sla",
            TestId::AuditIntegrity => "audit-integrity",
            TestId::SessionLimits => "session-limits",
        }
    }

    /// What the test shows when it passes, in one sentence.
    pub fn title(self) -> &'static str {
        match self {
            TestId::SigninPasskey => {
                "Every sign-in by a person was completed with a passkey (user verified) before the session acted"
            }
            TestId::PasskeyEnrollment => {
                "Every person held a passkey within the enrollment window of their account"
            }
            TestId::UniqueIdentity => {
                "Every interactive access was by one named person: no account in two places at once, no service in a shell"
            }
            TestId::LeaverDeprovision => {
                "Every leaver's access ended within the limit, and nothing of theirs was used after"
            }
            TestId::GrantApproval => {
                "Every temporary grant was approved by a named person other than the requester"
            }
            TestId::GrantExpiry => "Every temporary grant ended on time",
            TestId::AccessReview => {
                "Every group was reviewed within the review interval, and every revocation was verified"
            }
            TestId::SshRecorded => {
                "Every SSH session went through the proxy, ended on the record, was recorded, and its recording is intact"
            }
            TestId::PolicyChange => {
                "Every policy change went through apply with its tests passing, and none is missing"
            }
            TestId::VulnSla => {
                "Vulnerabilities were fixed within their SLA or formally accepted before it ran out"
            }
            TestId::AuditIntegrity => {
                "The audit log is covered by consistent signed checkpoints, with no gap over the limit"
            }
            TestId::SessionLimits => {
                "Idle and maximum session limits were in force, and no SSH session outlived them"
            }
        }
    }
}

impl fmt::Display for TestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A test id Warden does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compliance test `{0}`: `warden compliance status` lists them")]
pub struct UnknownTest(pub String);

impl FromStr for TestId {
    type Err = UnknownTest;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TestId::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownTest(s.to_owned()))
    }
}
