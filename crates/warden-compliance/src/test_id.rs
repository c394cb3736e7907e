//! The automated tests, by the ids catalogs, the API and the CLI use.

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
    /// An emergency access procedure was in place, and every use of it was recorded and had
    /// its after-action review closed.
    EmergencyAccess,
}

impl TestId {
    /// Every test, in the order they are shown.
    pub const ALL: [TestId; 13] = [
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
        TestId::EmergencyAccess,
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
            TestId::EmergencyAccess => "emergency-access",
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
            TestId::EmergencyAccess => {
                "An emergency access procedure was in place, and every use was recorded and reviewed after the fact"
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
